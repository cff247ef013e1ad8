package syncer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ferrite-edge/ferrite/store"
)

// Persisted syncer state, in the store's x keyspace (SyncState /
// SetSyncState, each write fsynced):
//
//	edge/state          edgeState of an edge
//	hub/meta            hubMeta: incarnation and state generation
//	hub/edges           the edges this hub knows (sorted names)
//	hub/edge/<node>     edgeRecord of one edge
//	stage/<stream>/...  FullSync chunks received and not merged yet
//
// Records are a version byte and uvarints. Cursors written lazily may be
// behind after a crash: every receiver skips what it already has, so a
// stale cursor costs a resend, never a loss or a double apply.

const stateVersion = 1

const (
	keyEdgeState = "edge/state"
	keyHubMeta   = "hub/meta"
	keyHubEdges  = "hub/edges"
)

func keyHubEdge(node string) string { return "hub/edge/" + node }

func (s *edgeState) marshal() []byte {
	b := []byte{stateVersion}
	b = appendString(b, s.HubID)
	b = appendUvarint(b, s.HubInc)
	b = appendUvarint(b, s.DownSeq)
	b = appendUvarint(b, s.UpAcked)
	b = appendBool(b, s.NeedFullUp)
	b = appendUvarint(b, s.DropUpTo)
	b = appendUvarint(b, s.Dropped)
	return appendVarint(b, s.LastSync)
}

func (s *edgeState) unmarshal(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return fmt.Errorf("%w: edge state version %d", ErrCorrupt, v)
	}
	s.HubID = r.str(MaxNodeID, "hub")
	s.HubInc = r.uvarint()
	s.DownSeq = r.uvarint()
	s.UpAcked = r.uvarint()
	s.NeedFullUp = r.bool("need full")
	s.DropUpTo = r.uvarint()
	s.Dropped = r.uvarint()
	s.LastSync = r.varint()
	if err := r.done(); err != nil {
		return fmt.Errorf("edge state: %w", err)
	}
	return nil
}

// hubMeta is the hub's identity and state generation.
type hubMeta struct {
	Inc      uint64 // random, fixed for the life of the data directory
	StateGen uint64 // FullSync merges so far (their changes are not in the log)
}

func (m *hubMeta) marshal() []byte {
	b := []byte{stateVersion}
	b = appendUvarint(b, m.Inc)
	return appendUvarint(b, m.StateGen)
}

func (m *hubMeta) unmarshal(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return fmt.Errorf("%w: hub meta version %d", ErrCorrupt, v)
	}
	m.Inc = r.uvarint()
	m.StateGen = r.uvarint()
	if err := r.done(); err != nil {
		return fmt.Errorf("hub meta: %w", err)
	}
	if m.Inc == 0 {
		return fmt.Errorf("%w: hub meta without an incarnation", ErrCorrupt)
	}
	return nil
}

func newIncarnation() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint64(b[:]) >> 1; v != 0 {
			return v // 63 bits: a short uvarint is not worth a weaker id
		}
	}
}

func (r *edgeRecord) marshal() []byte {
	b := []byte{stateVersion}
	b = appendUvarint(b, r.DownCursor)
	b = appendUvarint(b, r.HaveGen)
	b = appendUvarint(b, r.UpAcked)
	return appendVarint(b, r.LastSeen)
}

func (r *edgeRecord) unmarshal(b []byte) error {
	rd := reader{b: b}
	if v := rd.byte(); rd.err == nil && v != stateVersion {
		return fmt.Errorf("%w: edge record version %d", ErrCorrupt, v)
	}
	r.DownCursor = rd.uvarint()
	r.HaveGen = rd.uvarint()
	r.UpAcked = rd.uvarint()
	r.LastSeen = rd.varint()
	if err := rd.done(); err != nil {
		return fmt.Errorf("edge record: %w", err)
	}
	return nil
}

func marshalNames(names []string) []byte {
	b := []byte{stateVersion}
	b = appendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	return b
}

func unmarshalNames(b []byte) ([]string, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: names version %d", ErrCorrupt, v)
	}
	n := r.count(2, "name")
	names := make([]string, 0, n)
	for range n {
		names = append(names, r.node("name"))
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("names: %w", err)
	}
	if !slices.IsSorted(names) {
		return nil, fmt.Errorf("%w: names not sorted", ErrCorrupt)
	}
	return names, nil
}

// loadState reads the record called name into u; a missing record leaves
// u as it is and reports false.
func loadState(ctx context.Context, st Store, name string, u interface{ unmarshal([]byte) error }) (bool, error) {
	raw, err := st.SyncState(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("syncer: read %s: %w", name, err)
	}
	if err := u.unmarshal(raw); err != nil {
		return false, fmt.Errorf("syncer: %s: %w", name, err)
	}
	return true, nil
}
