package store

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testClock is a settable wall clock in unix ms.
type testClock struct{ ms atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ms.Store(1_708_300_000_000)
	return c
}

func (c *testClock) now() int64              { return c.ms.Load() }
func (c *testClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testOptions(dir string) Options {
	return Options{
		NodeID:        "edge-1",
		Dir:           dir,
		Durability:    DurabilityNone,
		SweepInterval: -1, // tests sweep explicitly
		Logger:        testLogger(),
		Registerer:    prometheus.NewRegistry(),
	}
}

// openTest opens a store on a fresh temp dir; mods adjust the options.
func openTest(t testing.TB, mods ...func(*Options)) *Store {
	t.Helper()
	o := testOptions(t.TempDir())
	for _, m := range mods {
		m(&o)
	}
	return openWith(t, o)
}

func openWith(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func withClock(c *testClock) func(*Options) {
	return func(o *Options) { o.Clock = c.now }
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
