package crdt

import "errors"

// Sentinel errors. Callers test them with errors.Is; the package wraps them
// with detail where it helps (ErrCorrupt says what and where).
var (
	// ErrWrongType is returned by a mutator or view used on a key holding
	// another kind of value (Redis' WRONGTYPE).
	ErrWrongType = errors.New("crdt: WRONGTYPE operation against a key holding the wrong kind of value")
	// ErrOverflow is returned when an increment would overflow int64 (or a
	// counter's merged value does not fit in int64). Counters never wrap.
	ErrOverflow = errors.New("crdt: increment or decrement would overflow")
	// ErrNotInteger is returned by INCR-like operations on a string that is
	// not a canonical base-10 int64.
	ErrNotInteger = errors.New("crdt: value is not an integer or out of range")
	// ErrClockSkew is returned by HLC.Update when a remote timestamp is
	// further ahead of the local wall clock than the configured maximum skew.
	// The remote time is not adopted; the caller decides what to do.
	ErrClockSkew = errors.New("crdt: remote clock too far ahead")
	// ErrCorrupt is returned by every decoder for input it cannot accept.
	ErrCorrupt = errors.New("crdt: corrupt encoding")
	// ErrInvalid is returned for arguments a mutator cannot accept (an
	// aggregate partial that is empty or holds NaN, an unknown strategy).
	ErrInvalid = errors.New("crdt: invalid argument")
	// ErrStale is returned by AggregateAdd when the partial's Version is not
	// newer than the one already recorded for its origin.
	ErrStale = errors.New("crdt: aggregate partial version is not newer")
)
