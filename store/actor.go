package store

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
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
// A data directory restored from a backup keeps its actor, and so can
// still reuse dots its peers hold: docs/OPERATIONS.md, "Backup and
// restore", says how to restore one safely.

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
