package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ferrite-edge/ferrite/crdt"
)

// Actors.
//
// A dot names the replica that made a write and numbers it: (actor,
// counter). Peers remember the dots they hold and ignore a write whose dot
// they already have. If the actor were the node id alone, a node whose
// data directory was lost (a replaced SD card, a wiped disk) would start
// counting from 1 again under the same name: every write it made before
// reaching its hub would reuse a dot the hub holds with other content, be
// ignored there, and the replicas would diverge for good. So the actor is
// the node id plus an incarnation drawn when the data directory is
// created, "gw-1$k3q9x2mb": the node id says whose write it is (the hub
// accepts an edge's ops only under its own node id), the incarnation keeps
// each data directory's dots apart. Directories created before actors
// existed keep the node id as their actor.
//
// A data directory restored from a backup keeps its actor, and so could
// reuse dots its peers hold (the ones its original wrote after the
// backup). Opened with Options.NewActor (ferrite --new-actor), it retires
// that actor and draws a new one: its own dots so far join its causal
// context like a peer's, its ops still in the op log up to the counter it
// retired at stay its own (OwnDot: they are sent to the hub as before),
// and its new writes reuse nothing. The hub then sends it back what the
// original wrote after the backup, as it does for any peer's writes; those
// ops carry the retired actor too, above that counter: not its own.
// NewActor must be the directory's first start after the restore: writes
// made before it already reused dots, and nothing can tell them apart.

const (
	actorSep = "$"
	// incarnationLen is the length of an actor's incarnation: 8 base32
	// letters, 40 random bits.
	incarnationLen = 8
	// ActorSuffixLen is the length an incarnation adds to a node id.
	ActorSuffixLen = len(actorSep) + incarnationLen
	// MaxNodeID bounds a node id: with its incarnation, an actor still fits
	// the op log's node field.
	MaxNodeID = maxOpNode - ActorSuffixLen
)

var incarnationEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewActor returns a fresh actor name for node: node$<8 random letters>.
func NewActor(node string) (string, error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: draw an incarnation: %w", err)
	}
	return node + actorSep + incarnationEncoding.EncodeToString(b[:]), nil
}

// ActorNode returns the node id of actor: the part before '$', or actor
// itself (an actor named before incarnations existed is the node id).
func ActorNode(actor string) string {
	node, _, _ := strings.Cut(actor, actorSep)
	return node
}

// Actor returns the name this replica's writes carry in dots and stamps
// (see Options.Actor).
func (s *Store) Actor() string { return s.actor }

// retiredActor is an actor this directory wrote under before NewActor, and
// the last counter it wrote (the dots above it are the original's, from
// after the backup: they come back from the hub, they are not ours).
type retiredActor struct {
	name string
	upto uint64
}

// OwnDot reports whether d is a write of this data directory: of its
// actor, or of one it retired (Options.NewActor) up to the counter it
// retired at. The syncer sends the ops of these dots to the hub.
func (s *Store) OwnDot(d crdt.Dot) bool {
	if d.Node == s.actor {
		return true
	}
	i := slices.IndexFunc(s.retired, func(r retiredActor) bool { return r.name == d.Node })
	return i >= 0 && d.Counter <= s.retired[i].upto
}

// loadActor reads the directory's actor (the one it was created with, or
// the node id for a directory created before actors existed) and the
// actors it retired.
func (s *Store) loadActor() error {
	a, err := s.getMeta(metaActor)
	if err != nil {
		return err
	}
	s.actor = s.node
	if a != nil {
		s.actor = string(a)
	}
	if s.opts.Actor != "" && s.opts.Actor != s.actor {
		return fmt.Errorf("%w: its writes are named %q, not %q", ErrNodeMismatch, s.actor, s.opts.Actor)
	}
	v, err := s.getMeta(metaRetired)
	if err != nil || v == nil {
		return err
	}
	r := reader{b: v}
	n := r.uvarint()
	for range min(n, uint64(len(v))) {
		s.retired = append(s.retired, retiredActor{name: r.str(maxOpNode), upto: r.uvarint()})
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("metadata %q: %w", metaRetired, err)
	}
	return nil
}

// retireActor makes the directory write under a new actor (at Open, after
// the context and counter are loaded). The old actor's dots 1..counter are
// in the context already (loadContext added them); they are persisted with
// it, since the context no longer adds them back on open.
func (s *Store) retireActor() error {
	next, err := NewActor(s.node)
	if err != nil {
		return err
	}
	old := s.actor
	s.retired = append(s.retired, retiredActor{name: old, upto: s.counter})
	s.actor, s.counter = next, 0
	v := binary.AppendUvarint(nil, uint64(len(s.retired)))
	for _, a := range s.retired {
		v = binary.AppendUvarint(v, uint64(len(a.name)))
		v = append(v, a.name...)
		v = binary.AppendUvarint(v, a.upto)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaKey(metaActor), []byte(s.actor), nil)
	_ = b.Set(metaKey(metaRetired), v, nil)
	s.putState(b)
	s.putContext(b)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: retire actor %q: %w", old, err)
	}
	s.log.Warn("data directory writes under a new actor from now on (NewActor)",
		"retired", old, "actor", s.actor, "retired_counter", s.retired[len(s.retired)-1].upto)
	return nil
}
