package ingest

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Timestamp heuristics. A numeric timestamp carries no unit, so the unit is
// inferred from its magnitude, the way most IoT back ends do it:
//
//	|v| < 1e11   seconds       (1e11 s  is the year 5138)
//	|v| < 1e14   milliseconds  (1e11 ms is 1973-03-03)
//	|v| < 1e17   microseconds  (1e14 µs is 1973-03-03)
//	otherwise    nanoseconds
//
// Any date from 1973 on is therefore read in the right unit; times are kept
// as int64 nanoseconds, so a date from maxDeviceTime (2262) on is an error,
// as is a negative number. Devices without a clock often send their uptime
// or 0 instead: a timestamp that resolves to before minDeviceTime
// (2000-01-01) is treated as absent and the receive time is used (counted
// as ferrite_ingest_timestamp_fallback_total).
const (
	secondsBelow = 1e11
	millisBelow  = 1e14
	microsBelow  = 1e17
)

var (
	minDeviceTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	// maxDeviceTime is the largest time representable in int64 nanoseconds
	// with a margin (2262-04-11 is the overflow point).
	maxDeviceTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// parseValueText parses a plain-text value: a decimal number, or one of the
// binary states ON/OFF/true/false (any case), which map to 1 and 0.
// Surrounding whitespace is ignored. Non-finite values are rejected.
func parseValueText(b []byte) (float64, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, ErrEmptyPayload
	}
	if v, ok := parseBinaryState(b); ok {
		return v, nil
	}
	return parseDecimal(b)
}

// parseBinaryState recognises ON/OFF/TRUE/FALSE in any case.
func parseBinaryState(b []byte) (float64, bool) {
	switch len(b) {
	case 2:
		if equalFold(b, "on") {
			return 1, true
		}
	case 3:
		if equalFold(b, "off") {
			return 0, true
		}
	case 4:
		if equalFold(b, "true") {
			return 1, true
		}
	case 5:
		if equalFold(b, "false") {
			return 0, true
		}
	}
	return 0, false
}

// equalFold compares b with the lower-case ASCII string s ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecimal accepts the decimal float syntax (sign, digits, point,
// exponent) and nothing else: no hex floats, no underscores, no Inf/NaN.
func parseDecimal(b []byte) (float64, error) {
	if len(b) == 0 || len(b) > 64 {
		return 0, ErrBadNumber
	}
	digits := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E':
		default:
			return 0, ErrBadNumber
		}
	}
	if digits == 0 {
		return 0, ErrBadNumber
	}
	// strconv clones the string in its errors, so string(b) does not escape
	// and this conversion does not allocate.
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, ErrBadNumber
	}
	return v, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// tsFromNumber converts a numeric timestamp of unknown unit (raw JSON or
// text number) to unix nanoseconds using the magnitude heuristics. ok is
// false when the value means "no clock" (before 2000); err is set when it
// is not a usable time at all (negative, beyond 2262).
func tsFromNumber(raw []byte) (ns int64, ok bool, err error) {
	if isInteger(raw) {
		i, perr := strconv.ParseInt(string(raw), 10, 64)
		if perr == nil {
			return tsFromInt(i)
		}
		// Larger than int64: fall through to the float path, which rejects it.
	}
	f, perr := parseDecimal(raw)
	if perr != nil {
		return 0, false, fmt.Errorf("%w: %q", ErrBadTimestamp, raw)
	}
	return tsFromFloat(f)
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func tsFromInt(i int64) (int64, bool, error) {
	if i < 0 {
		return 0, false, fmt.Errorf("%w: negative", ErrBadTimestamp)
	}
	var scale int64 = 1
	switch {
	case i < secondsBelow:
		scale = 1e9
	case i < millisBelow:
		scale = 1e6
	case i < microsBelow:
		scale = 1e3
	}
	if i >= maxDeviceTime/scale { // i*scale would reach 2262 or overflow
		return 0, false, fmt.Errorf("%w: out of range", ErrBadTimestamp)
	}
	return checkDeviceTime(i * scale)
}

func tsFromFloat(f float64) (int64, bool, error) {
	if f < 0 || math.IsNaN(f) {
		return 0, false, fmt.Errorf("%w: negative", ErrBadTimestamp)
	}
	// Seconds, ms and µs are rounded to the microsecond, then scaled in
	// integers: a float64 of seconds since 1970 holds about 0.2 µs, so
	// f*1e9 of 1795805108.123 is ...08.122999808 and was stored as .122 ms.
	var v, scale float64 = f, 1 // v in units of scale nanoseconds
	switch {
	case f < secondsBelow:
		v, scale = math.Round(f*1e6), 1e3
	case f < millisBelow:
		v, scale = math.Round(f*1e3), 1e3
	case f < microsBelow:
		v, scale = math.Round(f), 1e3
	default:
		v = math.Round(f)
	}
	if v*scale >= float64(maxDeviceTime) {
		return 0, false, fmt.Errorf("%w: out of range", ErrBadTimestamp)
	}
	return checkDeviceTime(int64(v) * int64(scale))
}

func checkDeviceTime(ns int64) (int64, bool, error) {
	if ns >= maxDeviceTime {
		return 0, false, fmt.Errorf("%w: out of range", ErrBadTimestamp)
	}
	if ns < minDeviceTime {
		return 0, false, nil
	}
	return ns, true, nil
}

// tsFromString parses an RFC 3339 timestamp, the same with a space for
// the 'T', a zone-less one (Tasmota's "Time", read in loc), or a number
// written as a string.
func tsFromString(b []byte, loc *time.Location) (int64, bool, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, false, nil
	}
	if !containsByte(b, '-') && !containsByte(b, ':') {
		return tsFromNumber(b)
	}
	if len(b) > 64 || len(b) < 19 {
		return 0, false, fmt.Errorf("%w: %q", ErrBadTimestamp, b)
	}
	// Pick the one layout that can match, so a valid timestamp costs one
	// parse (failed parses allocate their error).
	layout := "2006-01-02T15:04:05.999999999"
	switch b[10] {
	case ' ':
		layout = "2006-01-02 15:04:05.999999999"
	case 't': // RFC 3339 5.6 allows lower case 't' and 'z'
		b = bytes.Clone(b)
		b[10] = 'T'
	}
	n := len(b)
	if b[n-1] == 'z' {
		b = bytes.Clone(b)
		b[n-1] = 'Z'
	}
	zoned := b[n-1] == 'Z' || (n >= 25 && (b[n-6] == '+' || b[n-6] == '-') && b[n-3] == ':')
	var t time.Time
	var err error
	if zoned {
		t, err = time.Parse(layout+"Z07:00", string(b))
	} else {
		t, err = time.ParseInLocation(layout, string(b), loc)
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: %q", ErrBadTimestamp, b)
	}
	if t.Year() < 1678 || t.Year() > 2261 {
		return 0, false, fmt.Errorf("%w: out of range", ErrBadTimestamp)
	}
	return checkDeviceTime(t.UnixNano())
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// Limits of one reading.
const (
	// MaxUnitLen is the longest unit a reading may carry, in bytes.
	MaxUnitLen = 64
	// MaxMagnitude bounds a reading's absolute value. No sensor measures
	// beyond it, and sums of such values could overflow to infinity,
	// which no aggregate can hold.
	MaxMagnitude = 1e100
)

// checkReading refuses a value that is not finite or beyond MaxMagnitude,
// and a unit longer than MaxUnitLen.
func checkReading(v float64, unitLen int) error {
	if math.IsNaN(v) || math.Abs(v) > MaxMagnitude {
		return fmt.Errorf("%w: %g is out of range (±%g)", ErrBadNumber, v, MaxMagnitude)
	}
	if unitLen > MaxUnitLen {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadUnit, unitLen, MaxUnitLen)
	}
	return nil
}
