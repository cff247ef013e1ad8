package crdt

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock reading packed into 64 bits: the
// physical part (Unix milliseconds, 48 bits) in the high bits and a logical
// counter (16 bits) in the low bits. Timestamps order as plain uint64. Zero
// means "no timestamp".
type Timestamp uint64

const (
	logicalBits  = 16
	maxPhysical  = 1<<(64-logicalBits) - 1
	timestampLen = 8
)

// NewTimestamp packs a physical time in Unix milliseconds and a logical
// counter. Physical times outside [0, 2^48) are clamped.
func NewTimestamp(physicalMillis int64, logical uint16) Timestamp {
	return Timestamp(uint64(clampPhysical(physicalMillis))<<logicalBits | uint64(logical))
}

func clampPhysical(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	if ms > maxPhysical {
		return maxPhysical
	}
	return ms
}

// Physical returns the physical part in Unix milliseconds.
func (t Timestamp) Physical() int64 { return int64(t >> logicalBits) }

// Logical returns the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// String formats the timestamp as "<unix ms>.<logical>".
func (t Timestamp) String() string {
	return strconv.FormatInt(t.Physical(), 10) + "." + strconv.FormatUint(uint64(t.Logical()), 10)
}

// AppendBinary appends the 8-byte big-endian encoding of t.
func (t Timestamp) AppendBinary(b []byte) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t))
}

// DecodeTimestamp decodes the encoding made by Timestamp.AppendBinary.
func DecodeTimestamp(b []byte) (Timestamp, error) {
	if len(b) != timestampLen {
		return 0, fmt.Errorf("%w: timestamp is %d bytes, want %d", ErrCorrupt, len(b), timestampLen)
	}
	return Timestamp(binary.BigEndian.Uint64(b)), nil
}

// HLC is a hybrid logical clock (Kulkarni et al., "Logical Physical Clocks").
// Its readings never go backwards, stay close to the wall clock, and a
// reading taken after observing a remote timestamp (Update) is greater than
// it. The wall clock is injected, so the package never reads time itself.
// An HLC is safe for concurrent use.
type HLC struct {
	mu      sync.Mutex
	clock   func() int64 // Unix milliseconds
	maxSkew int64        // milliseconds; <= 0 disables the check
	last    Timestamp
}

// NewHLC returns a clock reading physical time from clock (Unix
// milliseconds). Update rejects remote timestamps more than maxSkew ahead of
// clock(); maxSkew <= 0 disables that check.
func NewHLC(clock func() int64, maxSkew time.Duration) *HLC {
	return &HLC{clock: clock, maxSkew: maxSkew.Milliseconds()}
}

// Now returns a timestamp greater than every timestamp this clock returned
// or observed before. When the logical counter is exhausted within one
// millisecond the physical part advances by one millisecond.
func (c *HLC) Now() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = next(c.last, clampPhysical(c.clock()))
	return c.last
}

// next returns the smallest timestamp > floor that is not behind the wall
// clock (Unix ms). Packing makes logical overflow carry into the physical
// part.
func next(floor Timestamp, wallMillis int64) Timestamp {
	if wall := NewTimestamp(wallMillis, 0); wall > floor {
		return wall
	}
	if floor == ^Timestamp(0) {
		return floor // the end of time (year 10889); never wrap to zero
	}
	return floor + 1
}

// Update merges a timestamp received from another node and returns a new
// local timestamp greater than both it and every earlier reading. If remote
// is more than the maximum skew ahead of the wall clock, Update returns 0
// and ErrClockSkew and leaves the clock untouched: a node with a broken clock
// must not drag every other node into the future.
func (c *HLC) Update(remote Timestamp) (Timestamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := clampPhysical(c.clock())
	if c.maxSkew > 0 && remote.Physical()-wall > c.maxSkew {
		return 0, fmt.Errorf("%w: remote %s is %d ms ahead of local wall clock %d (max %d ms)",
			ErrClockSkew, remote, remote.Physical()-wall, wall, c.maxSkew)
	}
	c.last = next(max(c.last, remote), wall)
	return c.last, nil
}

// Last returns the highest timestamp issued or observed: the high-water mark
// to persist so the clock can be restored after a restart.
func (c *HLC) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Restore raises the clock to a persisted high-water mark: every later Now
// returns a timestamp greater than hw, even if the wall clock went backwards
// across the restart.
func (c *HLC) Restore(hw Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, hw)
}
