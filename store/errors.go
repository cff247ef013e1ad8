package store

import "errors"

// Sentinel errors. Callers match them with errors.Is; the store wraps them
// with the offending key or size where that helps the operator.
var (
	// ErrNotFound is returned by point reads of a key (or hash field) that
	// does not exist or has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by every call made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrKeyTooLarge is returned when a key exceeds Options.MaxKeySize.
	ErrKeyTooLarge = errors.New("store: key too large")
	// ErrValueTooLarge is returned when a value, hash field or set member
	// exceeds Options.MaxValueSize, or a key's whole entry would exceed
	// Options.MaxEntrySize.
	ErrValueTooLarge = errors.New("store: value too large")
	// ErrEmptyKey is returned for the empty key.
	ErrEmptyKey = errors.New("store: empty key")
	// ErrTooManyKeys is returned when a write would create a key beyond
	// Options.MaxKeys.
	ErrTooManyKeys = errors.New("store: too many keys")
	// ErrStorageFull is returned when the database uses more than
	// Options.StorageLimit bytes on disk and a write could grow it.
	ErrStorageFull = errors.New("store: storage limit reached")
	// ErrWritesRefused is returned while SetRefuseWrites is in force (the
	// resource monitor's Critical level) for writes that could grow the store.
	ErrWritesRefused = errors.New("store: writes refused")
	// ErrBadTTL is returned for a non-positive or overflowing expiry.
	ErrBadTTL = errors.New("store: invalid expire time")
	// ErrCorrupt is returned when a stored record cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrWALFailed is returned by every write after an fsync of the WAL
	// failed: after a failed fsync the kernel may have dropped dirty pages,
	// so the store stops acknowledging writes until it is reopened.
	ErrWALFailed = errors.New("store: WAL sync failed")
	// ErrNodeMismatch is returned by Open when the data directory belongs to
	// another node id: reusing it under a new identity would reuse dots.
	ErrNodeMismatch = errors.New("store: data directory belongs to another node")
	// ErrInvalidOptions wraps every problem Options.Validate finds.
	ErrInvalidOptions = errors.New("store: invalid options")
	// ErrInvalidSensor is returned for an empty or oversized sensor id.
	ErrInvalidSensor = errors.New("store: invalid sensor id")
)

// ErrSyntax is returned for malformed arguments (a bad SCAN cursor or glob,
// conflicting options).
var ErrSyntax = errors.New("store: syntax error")
