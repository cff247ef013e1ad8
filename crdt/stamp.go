package crdt

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Role is what a node is in the topology: an edge gateway or a cloud hub.
// CloudWins and EdgeWins rank writes by their writer's role.
type Role uint8

// Roles.
const (
	RoleEdge Role = 0
	RoleHub  Role = 1
)

func (r Role) String() string {
	switch r {
	case RoleEdge:
		return "edge"
	case RoleHub:
		return "hub"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole parses "edge" or "hub".
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "edge":
		return RoleEdge, nil
	case "hub":
		return RoleHub, nil
	}
	return 0, fmt.Errorf("%w: unknown role %q (want edge or hub)", ErrInvalid, s)
}

// Stamp says when (HLC), who (node id) and in which role something was
// written. Strategies order writes by their stamps.
type Stamp struct {
	TS   Timestamp
	Node string
	Role Role
}

func (s Stamp) String() string {
	return fmt.Sprintf("%s@%s/%s", s.TS, s.Node, s.Role)
}

// Strategy decides which of two concurrent writes to one slot (a key, or a
// field of a hash) wins, and whether updates merge. See the package
// documentation for what each strategy means to a user.
type Strategy uint8

// Strategies. The zero value is LastWriteWins.
const (
	// LastWriteWins: every write replaces the whole key; among concurrent
	// writes the greatest (HLC, node id) wins.
	LastWriteWins Strategy = 0
	// CrdtMerge: concurrent updates merge (counters add, sets add-win,
	// pushes are all kept, hashes merge per field); concurrent overwrites
	// are resolved as LastWriteWins and reported as conflicts.
	CrdtMerge Strategy = 1
	// CloudWins: as LastWriteWins, but a hub's write beats an edge's
	// concurrent write whatever their clocks.
	CloudWins Strategy = 2
	// EdgeWins: as LastWriteWins, but an edge's write beats a hub's
	// concurrent write whatever their clocks.
	EdgeWins Strategy = 3
)

const numStrategies = 4

var strategyNames = [numStrategies]string{"lww", "crdt_merge", "cloud_wins", "edge_wins"}

// String returns the canonical configuration name: "lww", "crdt_merge",
// "cloud_wins" or "edge_wins".
func (s Strategy) String() string {
	if s < numStrategies {
		return strategyNames[s]
	}
	return fmt.Sprintf("Strategy(%d)", uint8(s))
}

// Valid reports whether s is one of the four strategies.
func (s Strategy) Valid() bool { return s < numStrategies }

// Merges reports whether updates under s merge (CrdtMerge) rather than
// overwrite the whole key (the LastWriteWins family).
func (s Strategy) Merges() bool { return s == CrdtMerge }

// ParseStrategy parses a strategy name, case-insensitively and ignoring '_',
// '-' and spaces: "lww", "last_write_wins", "LastWriteWins", "crdt",
// "crdt_merge", "merge", "cloud_wins", "cloud", "edge_wins", "edge".
func ParseStrategy(s string) (Strategy, error) {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ':
			return -1
		}
		return r
	}, strings.ToLower(s))
	switch norm {
	case "lww", "lastwritewins", "lastwriterwins":
		return LastWriteWins, nil
	case "crdt", "crdtmerge", "merge":
		return CrdtMerge, nil
	case "cloudwins", "cloud", "hubwins":
		return CloudWins, nil
	case "edgewins", "edge":
		return EdgeWins, nil
	}
	return 0, fmt.Errorf("%w: unknown conflict strategy %q (want lww, crdt_merge, cloud_wins or edge_wins)", ErrInvalid, s)
}

// MarshalText implements encoding.TextMarshaler (configuration files).
func (s Strategy) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseStrategy.
func (s *Strategy) UnmarshalText(b []byte) error {
	v, err := ParseStrategy(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Compare orders two stamps under s; it returns -1 if a loses to b, +1 if a
// wins, 0 only for identical stamps. It is a total order computed the same
// way on every replica, which is what makes resolution converge:
//   - LastWriteWins and CrdtMerge: by timestamp, then node id, then role.
//     Two distinct writes never tie: one node never issues one timestamp
//     twice.
//   - CloudWins: hub before edge, then as LastWriteWins.
//   - EdgeWins: edge before hub, then as LastWriteWins.
func (s Strategy) Compare(a, b Stamp) int {
	switch s {
	case CloudWins:
		if c := cmp.Compare(a.Role, b.Role); c != 0 { // RoleHub (1) > RoleEdge (0)
			return c
		}
	case EdgeWins:
		if c := cmp.Compare(b.Role, a.Role); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.TS, b.TS); c != 0 {
		return c
	}
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return cmp.Compare(a.Role, b.Role)
}

// PrefixRule selects a strategy for every key starting with Prefix.
type PrefixRule struct {
	Prefix   string   `yaml:"prefix" json:"prefix"`
	Strategy Strategy `yaml:"strategy" json:"strategy"`
}

// Resolver picks the strategy for a key: the rule with the longest matching
// prefix, else Default. Every replica must use the same Resolver (compare
// Digest), or replicas resolve the same conflict differently and diverge.
type Resolver struct {
	Default  Strategy     `yaml:"default" json:"default"`
	Prefixes []PrefixRule `yaml:"prefixes" json:"prefixes"`
}

// For returns the strategy for key.
func (r Resolver) For(key string) Strategy {
	best, bestLen := r.Default, -1
	for _, p := range r.Prefixes {
		if len(p.Prefix) > bestLen && strings.HasPrefix(key, p.Prefix) {
			best, bestLen = p.Strategy, len(p.Prefix)
		}
	}
	return best
}

// Validate reports unknown strategies and prefixes listed twice.
func (r Resolver) Validate() error {
	var errs []string
	if !r.Default.Valid() {
		errs = append(errs, fmt.Sprintf("default: unknown strategy %d", r.Default))
	}
	seen := make(map[string]bool, len(r.Prefixes))
	for i, p := range r.Prefixes {
		if !p.Strategy.Valid() {
			errs = append(errs, fmt.Sprintf("prefixes[%d] %q: unknown strategy %d", i, p.Prefix, p.Strategy))
		}
		if seen[p.Prefix] {
			errs = append(errs, fmt.Sprintf("prefixes[%d]: prefix %q listed twice", i, p.Prefix))
		}
		seen[p.Prefix] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: resolver: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Digest returns a short hex digest of the resolver's meaning (default and
// rules, order-independent), for replicas to check they agree.
func (r Resolver) Digest() string {
	rules := slices.Clone(r.Prefixes)
	slices.SortFunc(rules, func(a, b PrefixRule) int { return cmp.Compare(a.Prefix, b.Prefix) })
	b := []byte{formatV1, byte(r.Default)}
	b = appendUvarint(b, uint64(len(rules)))
	for _, p := range rules {
		b = appendString(b, p.Prefix)
		b = append(b, byte(p.Strategy))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
