package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrite-edge/ferrite/test/e2e"
)

// TestNewActorFlag: `ferrite --new-actor`, once after restoring a data
// directory from a backup, makes it write under a new actor of the same
// node (docs/OPERATIONS.md, "Backup and restore"); its data stays, and the
// next plain start keeps the new actor.
func TestNewActorFlag(t *testing.T) {
	p := e2e.Start(t, "")
	actorOf := func(p *e2e.Process) string {
		var st map[string]any
		e2e.NewCommander(t, p.MQTTAddr()).DoInto(t, &st, "EDGE.STATUS")
		return fmt.Sprint(st["actor"])
	}
	e2e.NewCommander(t, p.MQTTAddr()).Do(t, "SET", "k", "v")
	first := actorOf(p)
	if !strings.HasPrefix(first, "e2e-node$") {
		t.Fatalf("actor %q", first)
	}
	p.Stop(t, syscall.SIGTERM, e2e.Timeout)

	p = p.Restart(t, "--new-actor")
	second := actorOf(p)
	if second == first || !strings.HasPrefix(second, "e2e-node$") {
		t.Fatalf("after --new-actor: %q (was %q)", second, first)
	}
	if !strings.Contains(p.Output(), "writes under a new actor") {
		t.Fatalf("no log of the new actor:\n%s", p.Output())
	}
	var v string
	e2e.NewCommander(t, p.MQTTAddr()).DoInto(t, &v, "GET", "k")
	if v != "v" {
		t.Fatalf("GET k = %q", v)
	}
	p.Stop(t, syscall.SIGTERM, e2e.Timeout)

	p = p.Restart(t)
	if third := actorOf(p); third != second {
		t.Fatalf("plain restart: actor %q, want %q", third, second)
	}
}
