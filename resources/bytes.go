package resources

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrBadSize is returned (wrapped) for a size that ParseBytes cannot read.
var ErrBadSize = errors.New("resources: bad size")

// Bytes is a size in bytes as written in the configuration: a plain integer
// ("5242880") or a number with a unit ("5mb", "1.5gb", "512KiB"). Units are
// powers of 1024 and case-insensitive, as in the root configuration's sizes:
// k, kb, kib = 1024; m, mb, mib = 1024²; g, gb, gib = 1024³; t, tb, tib =
// 1024⁴; b = 1. Zero means "not set".
type Bytes int64

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseBytes reads a size such as "5mb" (see Bytes). Negative and overflowing
// sizes are errors; a fraction of a byte is rounded ("1.5kb" is 1536).
func ParseBytes(s string) (Bytes, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("%w: %q: want a number with an optional unit (b, kb, mb, gb, tb)", ErrBadSize, s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%w: %q: unknown unit %q (b, k, kb, kib, m, mb, mib, g, gb, gib, t, tb, tib)", ErrBadSize, s, unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 63)
		if err == nil && mult == 1 {
			return Bytes(n), nil
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrBadSize, s, err)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q: too large", ErrBadSize, s)
	}
	return Bytes(math.Round(v)), nil
}

// String formats b with a binary unit, e.g. "5.0 MiB", or "512 B".
func (b Bytes) String() string { return formatBytes(int64(b)) }

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, exp := float64(n), 0
	for math.Abs(f) >= unit && exp < 4 {
		f /= unit
		exp++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + [...]string{"", "KiB", "MiB", "GiB", "TiB"}[exp]
}

// UnmarshalYAML accepts an integer or a string with a unit.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: line %d: want a scalar such as 5mb", ErrBadSize, n.Line)
	}
	v, err := ParseBytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML writes the plain number of bytes, which reads back exactly.
func (b Bytes) MarshalYAML() (any, error) { return int64(b), nil }

// UnmarshalText lets Bytes be set from flags and environment variables.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
