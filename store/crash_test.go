package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Crash tests. (a) A child process writes under durability "always" and
// reports each acknowledged write on stdout; the parent kills it with
// SIGKILL at a random moment, reopens the store and checks that every
// acknowledged write is there, the store opens cleanly, and the node's dots
// and HLC stamps never go backwards (the child's wall clock is set back a
// minute each round, as on a gateway without an RTC). (b) The same on
// Pebble's crashable in-memory filesystem, in process.

const (
	crashChildEnv = "STORE_CRASH_CHILD"
	crashRoundEnv = "STORE_CRASH_ROUND"
	crashWriters  = 8
)

func crashOptions(dir string, round int) Options {
	o := testOptions(dir)
	o.Durability = DurabilityAlways
	o.Resolver = crdt.Resolver{Default: crdt.CrdtMerge}
	back := int64(round) * 60_000
	o.Clock = func() int64 { return time.Now().UnixMilli() - back }
	return o
}

// TestCrashChild is the child of TestCrashKill9; it only runs re-executed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("crash test child: run by TestCrashKill9")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	ctx := context.Background()
	s, err := Open(ctx, crashOptions(dir, round))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			for i := 1; ; i++ {
				key := fmt.Sprintf("g%d", g)
				if err := s.Set(ctx, key, []byte(strconv.Itoa(round*1_000_000+i))); err != nil {
					fmt.Fprintln(os.Stderr, "set:", err)
					os.Exit(3)
				}
				ack("set %s %d", key, round*1_000_000+i)
				n, err := s.IncrBy(ctx, fmt.Sprintf("c%d", g), 1)
				if err != nil {
					fmt.Fprintln(os.Stderr, "incr:", err)
					os.Exit(3)
				}
				ack("incr c%d %d", g, n)
				if i%5 == 0 {
					u := fmt.Sprintf("u-%d-%d-%d", round, g, i)
					if _, err := s.LPush(ctx, "log", []byte(u)); err != nil {
						fmt.Fprintln(os.Stderr, "lpush:", err)
						os.Exit(3)
					}
					ack("push %s", u)
				}
			}
		})
	}
	wg.Wait()
}

// crashAcks are the writes a child acknowledged.
type crashAcks struct {
	sets   map[string]int64 // key -> highest value acked
	incrs  map[string]int64
	pushes map[string]bool
	n      int
}

func (a *crashAcks) add(line string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return
	}
	a.n++
	switch f[0] {
	case "set", "incr":
		v, _ := strconv.ParseInt(f[2], 10, 64)
		m := a.sets
		if f[0] == "incr" {
			m = a.incrs
		}
		m[f[1]] = max(m[f[1]], v)
	case "push":
		a.pushes[f[1]] = true
	}
}

func TestCrashKill9(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	acks := &crashAcks{sets: map[string]int64{}, incrs: map[string]int64{}, pushes: map[string]bool{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	var last opLogCheck
	for round := range rounds {
		target := 20 + rng.IntN(400)
		got := runCrashChild(t, dir, round, target)
		for _, l := range got {
			acks.add(l)
		}
		s, err := Open(context.Background(), crashOptions(dir, round+1))
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		verifyAcks(t, s, acks)
		last = verifyOpLog(t, s, last)
		check(t, s.Close())
		t.Logf("round %d: killed after %d acks (target %d); op log %d dots", round, len(got), target, last.counter)
	}
}

// runCrashChild runs the child until it acknowledged target writes, kills
// it with SIGKILL and returns every complete ack line it wrote.
func runCrashChild(t *testing.T, dir string, round, target int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	out, err := cmd.StdoutPipe()
	check(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	check(t, cmd.Start())
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(out)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return // a line cut by the kill has no '\n': not an ack
			}
			lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	var got []string
	deadline := time.After(60 * time.Second)
	killed := false
	for l := range lines {
		got = append(got, l)
		if !killed && len(got) >= target {
			check(t, cmd.Process.Kill()) // SIGKILL
			killed = true
		}
		select {
		case <-deadline:
			if !killed {
				_ = cmd.Process.Kill()
				t.Fatalf("child acknowledged only %d writes in 60s; stderr: %s", len(got), stderr.String())
			}
		default:
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited by itself (%v): %s", err, stderr.String())
	}
	return got
}

func verifyAcks(t *testing.T, s *Store, acks *crashAcks) {
	t.Helper()
	ctx := context.Background()
	for _, m := range []map[string]int64{acks.sets, acks.incrs} {
		for k, want := range m {
			v, err := s.Get(ctx, k)
			if err != nil {
				t.Fatalf("acknowledged key %q lost: %v", k, err)
			}
			n, _ := strconv.ParseInt(string(v), 10, 64)
			if n < want {
				t.Fatalf("key %q = %d, but %d was acknowledged", k, n, want)
			}
		}
	}
	items, err := s.LRange(ctx, "log", 0, -1)
	check(t, err)
	have := make(map[string]bool, len(items))
	for _, it := range items {
		have[string(it)] = true
	}
	for u := range acks.pushes {
		if !have[u] {
			t.Fatalf("acknowledged push %q lost", u)
		}
	}
}

type opLogCheck struct {
	counter uint64
	ts      crdt.Timestamp
}

// verifyOpLog checks that the node's dots in the op log are exactly
// 1..counter in seq order with strictly increasing stamps, and that neither
// went backwards since the previous round.
func verifyOpLog(t *testing.T, s *Store, prev opLogCheck) opLogCheck {
	t.Helper()
	ctx := context.Background()
	var cur opLogCheck
	after := uint64(0)
	for {
		ops, next, err := s.OpsSince(ctx, OpsQuery{After: after, Limit: 10000, MaxBytes: 64 << 20})
		check(t, err)
		for _, op := range ops {
			if op.Dot.Counter != cur.counter+1 {
				t.Fatalf("op %d has dot %v after counter %d: a dot was skipped or reused", op.Seq, op.Dot, cur.counter)
			}
			if op.Stamp.TS <= cur.ts {
				t.Fatalf("op %d stamp %v not after %v: the HLC went backwards", op.Seq, op.Stamp.TS, cur.ts)
			}
			cur = opLogCheck{counter: op.Dot.Counter, ts: op.Stamp.TS}
		}
		if len(ops) == 0 {
			break
		}
		after = next
	}
	if cur.counter < prev.counter || cur.ts < prev.ts {
		t.Fatalf("op log went backwards: %+v after %+v", cur, prev)
	}
	if s.Now() <= cur.ts {
		t.Fatal("the restored HLC is not past the op log")
	}
	return cur
}

// crashFS runs writers on a crashable in-memory FS, takes a crash clone
// after target acknowledged writes, and returns the clone and the acks
// made before it.
func crashFS(t *testing.T, dur Durability, target int, unsynced int, seed uint64) (*vfs.MemFS, *crashAcks, Options) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	o := crashOptions("/data/node-1", 0) // a data dir that does not exist yet
	o.FS = fs
	o.Durability = dur
	s, err := Open(context.Background(), o)
	check(t, err)
	acks := &crashAcks{sets: map[string]int64{}, incrs: map[string]int64{}, pushes: map[string]bool{}}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	for g := range 4 {
		wg.Go(func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("g%d", g)
				if err := s.Set(ctx, key, []byte(strconv.Itoa(i))); err != nil {
					return
				}
				mu.Lock()
				acks.add(fmt.Sprintf("set %s %d", key, i))
				mu.Unlock()
				if i%3 == 0 {
					u := fmt.Sprintf("u-%d-%d", g, i)
					if _, err := s.LPush(ctx, "log", []byte(u)); err != nil {
						return
					}
					mu.Lock()
					acks.add("push " + u)
					mu.Unlock()
				}
			}
		})
	}
	// Poll until enough writes are acknowledged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := acks.n
		mu.Unlock()
		if n >= target {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d acks", n)
		}
		time.Sleep(time.Millisecond)
	}
	// Everything acknowledged so far must be in the clone.
	mu.Lock()
	snapshot := &crashAcks{sets: maps(acks.sets), incrs: maps(acks.incrs), pushes: mapsb(acks.pushes), n: acks.n}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(seed, 1))})
	mu.Unlock()
	close(stop)
	wg.Wait()
	check(t, s.Close())
	o.FS = crashed
	return crashed, snapshot, o
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapsb(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestCrashCloneAcknowledgedWritesSurvive(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for r := range rounds {
		seed := uint64(time.Now().UnixNano())
		unsynced := []int{0, 50, 100}[r%3]
		_, acks, o := crashFS(t, DurabilityAlways, 50+r*30, unsynced, seed)
		s, err := Open(context.Background(), o)
		if err != nil {
			t.Fatalf("round %d (seed %d, unsynced %d%%): reopen: %v", r, seed, unsynced, err)
		}
		verifyAcks(t, s, acks)
		verifyOpLog(t, s, opLogCheck{})
		check(t, s.Close())
	}
}

// TestCrashCloneDetectsLoss shows the harness can fail: under durability
// "none" acknowledged writes are not synced and a crash loses them.
func TestCrashCloneDetectsLoss(t *testing.T) {
	_, acks, o := crashFS(t, DurabilityNone, 100, 0, 1)
	s, err := Open(context.Background(), o)
	check(t, err)
	defer s.Close()
	lost := 0
	for k := range acks.pushes {
		items, err := s.LRange(context.Background(), "log", 0, -1)
		check(t, err)
		found := false
		for _, it := range items {
			found = found || string(it) == k
		}
		if !found {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no acknowledged write was lost under durability none: the crash clone does not drop unsynced data")
	}
}

// The sensor registry record is written lazily; a crash must not lose an
// acknowledged reading nor let a later one overwrite it.
func TestCrashCloneReadingsSurviveLazyRegistry(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	o := crashOptions("/data/node-1", 0)
	o.FS = fs
	o.Durability = DurabilityAlways
	o.MaxReadingsPerSensor = 40 // slack 5: the ring is trimmed too
	s, err := Open(ctx, o)
	check(t, err)
	for i := range 60 {
		check(t, s.AppendReadings(ctx, []Reading{{Sensor: "t", TS: int64(i), Value: float64(i)}}))
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	check(t, s.Close())
	o.FS = crashed
	s, err = Open(ctx, o)
	check(t, err)
	defer s.Close()
	got := must[[]Reading](t)(s.Readings(ctx, "t", 0, 0))
	if len(got) != 40 || got[0].TS != 20 || got[39].TS != 59 {
		t.Fatalf("after the crash: %d readings, %v .. %v", len(got), got[0], got[len(got)-1])
	}
	if info := s.Sensors(); info[0].Total != 60 || info[0].LastTS != 59 || info[0].Count != 40 {
		t.Fatalf("registry after the crash: %+v", info[0])
	}
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "t", TS: 60, Value: 60}}))
	got = must[[]Reading](t)(s.Readings(ctx, "t", 0, 0))
	if len(got) != 40 || got[0].TS != 21 || got[39].TS != 60 {
		t.Fatalf("append after the crash: %d readings, %v .. %v", len(got), got[0], got[len(got)-1])
	}
}
