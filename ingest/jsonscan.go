package ingest

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of payload documents. Sensor payloads are
// shallow (Tasmota nests two or three levels); the bound keeps a hostile
// payload from costing more than a linear scan.
const maxJSONDepth = 16

// jsonKind is the type of the value at the scanner's position.
type jsonKind uint8

const (
	jsonInvalid jsonKind = iota
	jsonNull
	jsonBool
	jsonNumber
	jsonString
	jsonObject
	jsonArray
)

// jsonScanner is a minimal, allocation-free pull scanner over one JSON
// document (RFC 8259). It exists because encoding/json allocates a map per
// object and a string per key, which dominates the cost of sensor payloads
// that are a few dozen bytes long. It validates everything it reads, so a
// document that a caller walks to the end is well-formed; it never panics on
// any input (see FuzzParsers).
type jsonScanner struct {
	data  []byte
	pos   int
	depth int
}

func (s *jsonScanner) reset(data []byte) {
	s.data, s.pos, s.depth = data, 0, 0
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrBadJSON, fmt.Sprintf(format, args...), s.pos)
}

func (s *jsonScanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the kind of the next value without consuming it.
func (s *jsonScanner) peek() jsonKind {
	s.skipWS()
	if s.pos >= len(s.data) {
		return jsonInvalid
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return jsonObject
	case c == '[':
		return jsonArray
	case c == '"':
		return jsonString
	case c == 't' || c == 'f':
		return jsonBool
	case c == 'n':
		return jsonNull
	case c == '-' || (c >= '0' && c <= '9'):
		return jsonNumber
	}
	return jsonInvalid
}

// end checks that only whitespace follows the document.
func (s *jsonScanner) end() error {
	s.skipWS()
	if s.pos != len(s.data) {
		return s.errorf("trailing data")
	}
	return nil
}

// enter consumes the opening bracket of an object or array.
func (s *jsonScanner) enter(open byte) error {
	s.skipWS()
	if s.pos >= len(s.data) || s.data[s.pos] != open {
		return s.errorf("expected %q", open)
	}
	if s.depth >= maxJSONDepth {
		return s.errorf("nesting deeper than %d", maxJSONDepth)
	}
	s.depth++
	s.pos++
	return nil
}

// more reports whether the object or array being read has another element,
// consuming the separating comma or the closing bracket. first must be true
// for the first call after enter.
func (s *jsonScanner) more(close byte, first bool) (bool, error) {
	s.skipWS()
	if s.pos >= len(s.data) {
		return false, s.errorf("unexpected end")
	}
	c := s.data[s.pos]
	if c == close {
		s.pos++
		s.depth--
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' {
		return false, s.errorf("expected ',' or %q", close)
	}
	s.pos++
	return true, nil
}

// key reads an object key and its colon, appending the unescaped key to dst.
func (s *jsonScanner) key(dst []byte) ([]byte, error) {
	s.skipWS()
	dst, err := s.str(dst)
	if err != nil {
		return dst, err
	}
	s.skipWS()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return dst, s.errorf("expected ':'")
	}
	s.pos++
	return dst, nil
}

// str reads a string value and appends its unescaped content to dst.
// Strings without escapes are copied with one append and no allocation when
// dst has room.
func (s *jsonScanner) str(dst []byte) ([]byte, error) {
	s.skipWS()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return dst, s.errorf("expected string")
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			dst = append(dst, s.data[start:s.pos]...)
			s.pos++
			return dst, nil
		case c == '\\':
			dst = append(dst, s.data[start:s.pos]...)
			var err error
			if dst, err = s.escape(dst); err != nil {
				return dst, err
			}
			start = s.pos
		case c < 0x20:
			return dst, s.errorf("control character in string")
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				return dst, s.errorf("invalid UTF-8")
			}
			s.pos += n
		}
	}
	return dst, s.errorf("unterminated string")
}

// escape decodes the escape sequence at s.pos (which is a backslash).
func (s *jsonScanner) escape(dst []byte) ([]byte, error) {
	if s.pos+1 >= len(s.data) {
		return dst, s.errorf("unterminated escape")
	}
	c := s.data[s.pos+1]
	s.pos += 2
	switch c {
	case '"', '\\', '/':
		return append(dst, c), nil
	case 'b':
		return append(dst, '\b'), nil
	case 'f':
		return append(dst, '\f'), nil
	case 'n':
		return append(dst, '\n'), nil
	case 'r':
		return append(dst, '\r'), nil
	case 't':
		return append(dst, '\t'), nil
	case 'u':
		r, ok := s.hex4()
		if !ok {
			return dst, s.errorf("bad \\u escape")
		}
		if utf16.IsSurrogate(r) {
			// A high surrogate must be followed by \uDC00-\uDFFF; a lone
			// surrogate decodes to U+FFFD as encoding/json does.
			if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
				save := s.pos
				s.pos += 2
				r2, ok := s.hex4()
				if !ok {
					return dst, s.errorf("bad \\u escape")
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return utf8.AppendRune(dst, dec), nil
				}
				s.pos = save
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), nil
	}
	return dst, s.errorf("bad escape")
}

func (s *jsonScanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// number reads a JSON number and returns its raw bytes (a subslice of the
// input, valid until the next reset).
func (s *jsonScanner) number() ([]byte, error) {
	s.skipWS()
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.errorf("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return nil, s.errorf("bad number fraction")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return nil, s.errorf("bad number exponent")
		}
	}
	s.pos = i
	return d[start:i], nil
}

// literal reads true, false or null.
func (s *jsonScanner) literal() (kind jsonKind, val bool, err error) {
	s.skipWS()
	rest := s.data[s.pos:]
	switch {
	case hasPrefix(rest, "true"):
		s.pos += 4
		return jsonBool, true, nil
	case hasPrefix(rest, "false"):
		s.pos += 5
		return jsonBool, false, nil
	case hasPrefix(rest, "null"):
		s.pos += 4
		return jsonNull, false, nil
	}
	return jsonInvalid, false, s.errorf("bad literal")
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// skip consumes one value of any kind, validating it.
func (s *jsonScanner) skip() error {
	switch s.peek() {
	case jsonObject:
		if err := s.enter('{'); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := s.more('}', first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if _, err := s.key(nil); err != nil {
				return err
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case jsonArray:
		if err := s.enter('['); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := s.more(']', first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case jsonString:
		return s.skipString()
	case jsonNumber:
		_, err := s.number()
		return err
	case jsonBool, jsonNull:
		_, _, err := s.literal()
		return err
	}
	return s.errorf("expected value")
}

// skipString validates a string without copying it unless it has escapes
// (the escapes are decoded into a stack buffer that is then discarded).
func (s *jsonScanner) skipString() error {
	var scratch [64]byte
	_, err := s.str(scratch[:0])
	return err
}

// scalar is a decoded leaf value.
type scalar struct {
	kind jsonKind
	num  []byte // raw number bytes (jsonNumber)
	str  []byte // unescaped string (jsonString), aliases the caller's buffer
	b    bool   // jsonBool
}

// readScalar reads a leaf value; objects and arrays are reported by kind and
// left unconsumed. String content is appended to buf and returned in str.
func (s *jsonScanner) readScalar(buf []byte) (scalar, []byte, error) {
	switch k := s.peek(); k {
	case jsonObject, jsonArray:
		return scalar{kind: k}, buf, nil
	case jsonString:
		n := len(buf)
		buf, err := s.str(buf)
		if err != nil {
			return scalar{}, buf, err
		}
		return scalar{kind: jsonString, str: buf[n:]}, buf, nil
	case jsonNumber:
		num, err := s.number()
		return scalar{kind: jsonNumber, num: num}, buf, err
	case jsonBool, jsonNull:
		k, b, err := s.literal()
		return scalar{kind: k, b: b}, buf, err
	}
	return scalar{}, buf, s.errorf("expected value")
}
