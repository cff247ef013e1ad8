package syncer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// The core's state machines, driven by scripts in testdata/edge and
// testdata/hub. Every script line is an input (with its time); the output
// is the list of actions the core queued.

var epoch = time.Unix(1_700_000_000, 0)

func rel(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Sub(epoch).String()
}

func scriptOps(node string, first uint64, n int) []store.Op {
	ops := make([]store.Op, n)
	for i := range ops {
		c := first + uint64(i)
		ops[i] = store.Op{Dot: crdt.Dot{Node: node, Counter: c}, Stamp: crdt.Stamp{Node: node},
			Key: fmt.Sprintf("k%d", c), Delta: []byte{1}}
	}
	return ops
}

// scriptMessage builds a received message from a script command:
// recv t=.. <kind> key=value...
func scriptMessage(t *testing.T, c *ddCmd, node string) Message {
	t.Helper()
	session := c.u64(t, "session", 0)
	switch c.args[0] {
	case "welcome":
		return &Welcome{Session: session, Hub: c.str(t, "hub", "hub"), HubInc: c.u64(t, "inc", 7),
			HubHas: c.u64(t, "has", 0), DownSeq: c.u64(t, "down", 0), OldestSeq: c.u64(t, "oldest", 1),
			FullDown: c.has("fulldown"), Resolver: c.str(t, "resolver", "r1"), Clock: int64(c.u64(t, "clock", 0))}
	case "hello":
		return &Hello{Session: session, Node: node, Actor: c.str(t, "actor", ""), HubInc: c.u64(t, "inc", 7), DownSeq: c.u64(t, "down", 0),
			UpAcked: c.u64(t, "upacked", 0), OwnCounter: c.u64(t, "counter", 0), Resolver: c.str(t, "resolver", "r1"),
			Clock: int64(c.u64(t, "clock", 0)), Context: crdt.NewContext()}
	case "ack":
		a := &Ack{Session: session, Stream: StreamDelta, Cursor: c.u64(t, "cursor", 0), Counter: c.u64(t, "counter", 0)}
		if c.has("full") {
			a.Stream, a.Snapshot, a.Chunk = StreamFull, c.u64(t, "snapshot", 1), c.u64(t, "chunk", 0)
		}
		for flag, f := range map[string]AckFlags{"gap": AckGap, "done": AckDone, "hello": AckHello} {
			if c.has(flag) {
				a.Flags |= f
			}
		}
		return a
	case "delta":
		origin := c.str(t, "origin", "other")
		return &DeltaSync{Session: session, After: c.u64(t, "after", 0), Upto: c.u64(t, "upto", 0),
			Ops: scriptOps(origin, c.u64(t, "first", 1), int(c.u64(t, "ops", 0)))}
	case "full":
		return scriptChunk(t, c)
	case "conflicts":
		return &ConflictReport{Session: session, Conflicts: make([]crdt.Conflict, c.u64(t, "n", 1))}
	}
	t.Fatalf("%s: unknown message %q", c.pos, c.args[0])
	return nil
}

func scriptChunk(t *testing.T, c *ddCmd) *FullSync {
	return &FullSync{Session: c.u64(t, "session", 0), Snapshot: c.u64(t, "snapshot", 1),
		Chunk: c.u64(t, "chunk", 0), Last: c.has("last"), SnapSeq: c.u64(t, "snapseq", 0),
		Chunks: c.u64(t, "chunk", 0) + 1, Context: crdt.NewContext()}
}

func TestEdgeCoreScripts(t *testing.T) {
	runScripts(t, "testdata/edge/*.txt", func() func(t *testing.T, c *ddCmd) string {
		var core *edgeCore
		return func(t *testing.T, c *ddCmd) string {
			now := epoch.Add(c.dur(t, "t", 0))
			if c.cmd != "new" && core == nil {
				t.Fatalf("%s: no core (start with new)", c.pos)
			}
			switch c.cmd {
			case "new":
				p, err := ParsePolicy(c.str(t, "policy", "immediate"))
				if err != nil {
					t.Fatal(err)
				}
				cfg := edgeConfig{Node: "edge", Policy: p, Interval: c.dur(t, "interval", 30*time.Second),
					Window: int(c.u64(t, "window", 2)), AckTimeout: c.dur(t, "acktimeout", 10*time.Second),
					MergeTimeout: c.dur(t, "mergetimeout", 60*time.Second),
					BackoffMin:   c.dur(t, "backoffmin", time.Second), BackoffMax: c.dur(t, "backoffmax", time.Minute),
					Resolver: "r1"}
				st := edgeState{HubID: c.str(t, "hub", ""), HubInc: c.u64(t, "inc", 0), DownSeq: c.u64(t, "down", 0),
					UpAcked: c.u64(t, "upacked", 0), NeedFullUp: c.has("needfull")}
				core = newEdgeCore(cfg, st, rand.New(rand.NewPCG(1, 2)))
				return ""
			case "start":
				core.Start(now, c.u64(t, "durable", 0))
			case "tick":
				core.Tick(now)
			case "link-up":
				counter := c.u64(t, "counter", 0)
				core.LinkUp(now, linkInfo{Session: c.u64(t, "session", 100), OwnCounter: counter,
					FirstAvail: c.u64(t, "firstavail", 1), Durable: c.u64(t, "durable", 0),
					Clock: int64(c.u64(t, "clock", 0)), Context: crdt.NewContext()})
			case "link-failed":
				core.LinkFailed(now, errors.New(c.str(t, "err", "refused")))
			case "durable":
				core.Durable(now, c.u64(t, "seq", 0))
			case "sync-now":
				core.SyncNow(now, c.u64(t, "target", 0))
			case "set-interval":
				core.SetInterval(now, c.dur(t, "d", time.Minute))
			case "read-up":
				core.UpRead(now, c.u64(t, "after", 0), c.u64(t, "next", 0),
					scriptOps("edge", c.u64(t, "first", 1), int(c.u64(t, "ops", 0))))
			case "recv":
				core.Receive(now, scriptMessage(t, c, "edge"))
			case "applied":
				var err error
				if e, ok := c.kv["err"]; ok {
					err = errors.New(e)
				}
				core.Applied(now, &DeltaSync{Session: c.u64(t, "session", 0), After: c.u64(t, "after", 0), Upto: c.u64(t, "upto", 0)}, err)
			case "chunk":
				core.ChunkReady(now, scriptChunk(t, c))
			case "staged":
				core.Staged(now, scriptChunk(t, c), nil)
			case "merged":
				core.Merged(now, scriptChunk(t, c), nil)
			case "overflow":
				core.Overflow(now, c.u64(t, "n", 0), c.u64(t, "upto", 0))
			case "hub-online":
				core.HubStatus(now, true)
			case "state":
				return edgeCoreState(core)
			default:
				t.Fatalf("%s: unknown command %q", c.pos, c.cmd)
			}
			return formatActions(core.take())
		}
	})
}

func edgeCoreState(c *edgeCore) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "phase=%s session=%d attempts=%d retry=%s next=%s", c.phase, c.session, c.attempts, rel(c.retryAt), rel(c.NextDeadline()))
	if c.lastErr != nil {
		fmt.Fprintf(&sb, " err=%q", c.lastErr)
	}
	sb.WriteString("\n")
	fmt.Fprintf(&sb, "up: acked=%d cursor=%d target=%d round=%v inflight=%d needfull=%v dropped=%d\n",
		c.st.UpAcked, c.sendCursor, c.target, c.roundOpen, len(c.inflight), c.st.NeedFullUp, c.st.Dropped)
	fmt.Fprintf(&sb, "down: seq=%d hub=%s inc=%d fullups=%d fulldowns=%d", c.st.DownSeq, c.st.HubID, c.st.HubInc, c.fullUps, c.fullDowns)
	if c.fu.active {
		fmt.Fprintf(&sb, "\nfullup: snapshot=%d sent=%d unacked=%d last=%v", c.fu.snapshot, c.fu.sent, len(c.fu.deadlines), c.fu.last)
	}
	return sb.String()
}

func TestHubCoreScripts(t *testing.T) {
	runScripts(t, "testdata/hub/*.txt", func() func(t *testing.T, c *ddCmd) string {
		var e *hubEdge
		var info hubInfo
		cfg := &hubConfig{Node: "hub", Window: 2, AckTimeout: 10 * time.Second, MergeTimeout: time.Minute,
			Resolver: "r1", MaxSkew: time.Minute, RangeEvery: time.Second}
		return func(t *testing.T, c *ddCmd) string {
			now := epoch.Add(c.dur(t, "t", 0))
			switch c.cmd {
			case "new":
				cfg.Window = int(c.u64(t, "window", 2))
				e = newHubEdge(cfg, "edge", edgeRecord{DownCursor: c.u64(t, "cursor", 0), HaveGen: c.u64(t, "gen", 0)})
				return ""
			case "info":
				info = hubInfo{Inc: c.u64(t, "inc", 7), LastSeq: c.u64(t, "last", 0), Durable: c.u64(t, "durable", c.u64(t, "last", 0)),
					Oldest: c.u64(t, "oldest", 1), StateGen: c.u64(t, "gen", 0), EdgeHas: c.u64(t, "has", 0),
					EdgeMax: c.u64(t, "max", c.u64(t, "has", 0))}
				return ""
			}
			if e == nil {
				t.Fatalf("%s: no edge (start with new)", c.pos)
			}
			switch c.cmd {
			case "hello":
				c.args = append([]string{"hello"}, c.args...)
				e.Hello(now, scriptMessage(t, c, "edge").(*Hello), info)
			case "recv":
				e.Receive(now, scriptMessage(t, c, "edge"))
			case "applied":
				e.Applied(now, &DeltaSync{Session: c.u64(t, "session", 0), After: c.u64(t, "after", 0), Upto: c.u64(t, "upto", 0)}, c.u64(t, "has", 0), nil)
			case "read-down":
				e.DownRead(now, c.u64(t, "after", 0), c.u64(t, "next", 0),
					scriptOps(c.str(t, "origin", "other"), c.u64(t, "first", 1), int(c.u64(t, "ops", 0))))
			case "update":
				e.Update(now, info)
			case "tick":
				e.Tick(now)
			case "chunk":
				e.ChunkReady(now, scriptChunk(t, c), c.u64(t, "gen", 0))
			case "staged":
				e.Staged(now, scriptChunk(t, c), nil)
			case "merged":
				e.Merged(now, scriptChunk(t, c), c.u64(t, "prevgen", 0), c.u64(t, "newgen", 1), c.u64(t, "has", 0), nil)
			case "report":
				e.Report(make([]crdt.Conflict, c.u64(t, "n", 1)))
			case "state":
				return fmt.Sprintf("active=%v session=%d hold=%s needfull=%v up=%d down: cursor=%d acked=%d inflight=%d gen=%d fulldowns=%d fullups=%d next=%s",
					e.active, e.session, rel(e.holdUntil), e.needFull, e.upCursor, e.sendCursor, e.rec.DownCursor,
					len(e.inflight), e.rec.HaveGen, e.fullDowns, e.fullUps, rel(e.NextDeadline()))
			case "prune":
				// prune gen= oldest= durable= floor= cursors=a:g,b:g
				var recs []edgeRecord
				for _, p := range strings.Split(c.str(t, "cursors", ""), ",") {
					if p == "" {
						continue
					}
					var r edgeRecord
					fmt.Sscanf(p, "%d:%d", &r.DownCursor, &r.HaveGen)
					recs = append(recs, r)
				}
				return fmt.Sprint(pruneTarget(recs, c.u64(t, "gen", 0), c.u64(t, "oldest", 1), c.u64(t, "durable", 0), c.u64(t, "floor", 0)))
			default:
				t.Fatalf("%s: unknown command %q", c.pos, c.cmd)
			}
			return formatActions(e.take())
		}
	})
}

// TestBackoffFullJitter: delays stay within [base/100, min(max, base·2^(n-1))).
func TestBackoffFullJitter(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	base, ceil := time.Second, time.Minute
	for n := 1; n <= 12; n++ {
		limit := min(ceil, base<<(n-1))
		var maxSeen time.Duration
		for range 2000 {
			d := backoff(rnd, base, ceil, n)
			if d < base/100 || d >= limit {
				t.Fatalf("attempt %d: delay %v outside [%v, %v)", n, d, base/100, limit)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < limit*3/4 {
			t.Fatalf("attempt %d: delays never came near %v (max %v): not full jitter", n, limit, maxSeen)
		}
	}
}
