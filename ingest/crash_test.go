package ingest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

const crashChildEnv = "FERRITE_INGEST_CRASH_CHILD"

// TestCrashDurability: a child process ingests QoS 1 readings one by one and
// reports each acknowledgement (HandleMessages returned nil, which is when
// the broker sends the PUBACK); the parent kills it with SIGKILL and checks
// that every acknowledged reading is in the store after reopening, and that
// the running aggregates count them all.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process and kills it")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for acked < 300 && time.Now().Before(deadline) && sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			acked = n
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked < 300 {
		t.Fatalf("child acknowledged only %d readings", acked+1)
	}
	n := &testNode{t: t, dir: dir, clock: &manualClock{now: time.Now()}}
	n.open(nil)
	defer n.close()
	rs, err := n.p.Ingestion().Latest(context.Background(), "crash", 1000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[float64]bool{}
	for _, r := range rs {
		have[r.Value] = true
	}
	for i := 0; i <= acked; i++ {
		if !have[float64(i)] {
			t.Fatalf("acknowledged reading %d of %d lost (ring has %d)", i, acked+1, len(rs))
		}
	}
	if st := n.stats("crash"); st.Count < uint64(acked+1) || st.Count != uint64(len(rs)) {
		t.Fatalf("stats count %d, acked %d, stored %d", st.Count, acked+1, len(rs))
	}
}

func crashChild(dir string) {
	st, err := store.Open(context.Background(), store.Options{NodeID: "edge-1", Dir: dir, Logger: quietLog, SweepInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := New(context.Background(), Options{
		Store: NewStoreBackend(st), Logger: quietLog, CheckpointInterval: 50 * time.Millisecond, TickInterval: 10 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		m := &Message{Topic: "sensors/crash", Payload: []byte(strconv.Itoa(i)), QoS: 1}
		if err := p.HandleMessages(context.Background(), []*Message{m}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}
