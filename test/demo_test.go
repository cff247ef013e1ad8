package test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// buildDemo builds cmd/ferrite-demo and cmd/ferrite-bench into a temp dir.
func buildDemo(t *testing.T) (demo, bench string) {
	t.Helper()
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, pkg := range []string{"./cmd/ferrite-demo", "./cmd/ferrite-bench"} {
		cmd := exec.Command("go", "build", "-o", dir, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "ferrite-demo"), filepath.Join(dir, "ferrite-bench")
}

// checkDemoConverged asserts the demo's verdict: every replica equal, the
// counter exact, the set and the hash merged, every bucket at the hub and
// republished for cloud subscribers, every process stopped cleanly.
func checkDemoConverged(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"offline writes: SET demo:color red",
		"CONVERGED in ",
		`demo:tags      set ["from-a","from-b"]`,
		`demo:settings  hash {"fan":"on","mode":"eco"}`,
		"every process stopped cleanly",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The counter holds every increment the demo made.
	m := regexp.MustCompile(`demo:visits    string "(\d+)"`).FindStringSubmatch(out)
	n := regexp.MustCompile(`demo:visits counts all (\d+) increments`).FindStringSubmatch(out)
	if m == nil || n == nil || m[1] != n[1] {
		t.Errorf("demo:visits %v, increments %v", m, n)
	}
	if !regexp.MustCompile(`demo:color     string "(red|blue)"`).MatchString(out) {
		t.Error("demo:color is neither of the concurrent values")
	}
	// Sensor buckets reached the hub and its cloud subscribers.
	for _, e := range []string{"edge-a", "edge-b"} {
		b := regexp.MustCompile(e + `: (\d+) sensor buckets, all at the hub and published`).FindStringSubmatch(out)
		if b == nil || b[1] == "0" {
			t.Errorf("%s buckets: %v", e, b)
		}
	}
	pub := regexp.MustCompile(`bucket messages for cloud subscribers: (\d+)`).FindAllStringSubmatch(out, -1)
	if len(pub) == 0 {
		t.Fatal("no summary line")
	}
	if last, _ := strconv.Atoi(pub[len(pub)-1][1]); last == 0 {
		t.Error("no bucket message published at the hub")
	}
}

// The documented demo command converges within its duration and exits 0.
func TestDemoConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub, two edges and two sensor simulators for 20s")
	}
	demo, bench := buildDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, "--duration", "20s", "--ferrite", e2e.Binary(t), "--bench", bench)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ferrite-demo: %v\n%s", err, out)
	}
	checkDemoConverged(t, string(out))
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// Ctrl-C stops the writes, and the demo still converges and stops every
// process cleanly.
func TestDemoInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub, two edges and two sensor simulators")
	}
	demo, bench := buildDemo(t)
	cmd := exec.Command(demo, "--interval", "1s", "--ferrite", e2e.Binary(t), "--bench", bench)
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "; converged\n") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no converged summary within 2 minutes:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("ferrite-demo exited early: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ferrite-demo after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("ferrite-demo did not stop after SIGINT:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "interrupted: ") {
		t.Error("the interruption is not reported")
	}
	checkDemoConverged(t, out.String())
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// syncBuf is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
