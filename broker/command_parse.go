package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ParseCommand splits a command payload into arguments, the first being the
// command name. Two forms are accepted:
//
//   - a JSON array of strings and numbers: ["HINCRBY","k","f",5] (numbers
//     keep their literal text);
//   - a command line as redis-cli reads it (its sdssplitargs rules):
//     arguments are separated by blanks; "double quotes" take the escapes
//     \" \\ \n \r \t \b \a and \xHH (any other \c is c); 'single quotes'
//     take only \'; a closing quote must be followed by a blank or the end.
//
// A payload whose first non-blank byte is '[' is JSON. Errors wrap ErrSyntax.
func ParseCommand(payload []byte) ([]string, error) {
	trimmed := bytes.TrimLeft(payload, " \t\r\n\v\f")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return parseJSONCommand(trimmed)
	}
	return splitArgs(string(payload))
}

// parseJSONCommand parses a flat JSON array of strings and numbers. It is
// a small dedicated scanner: strings without escapes share the memory of one
// copy of the payload, so a typical command costs two allocations;
// strings with escapes are decoded by encoding/json.
func parseJSONCommand(b []byte) ([]string, error) {
	s := string(b)
	i := skipJSONSpace(s, 0)
	if i == len(s) || s[i] != '[' {
		return nil, fmt.Errorf("%w: bad JSON array", ErrSyntax)
	}
	args := make([]string, 0, 4)
	i = skipJSONSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return nil, fmt.Errorf("%w: empty command", ErrSyntax)
	}
	for {
		if i == len(s) {
			return nil, fmt.Errorf("%w: bad JSON array: unterminated", ErrSyntax)
		}
		var end int
		switch c := s[i]; {
		case c == '"':
			var escaped bool
			var err error
			end, escaped, err = scanJSONString(s, i)
			if err != nil {
				return nil, fmt.Errorf("%w: element %d: %v", ErrSyntax, len(args), err)
			}
			if !escaped {
				args = append(args, s[i+1:end-1])
				break
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:end]), &v); err != nil {
				return nil, fmt.Errorf("%w: element %d: %v", ErrSyntax, len(args), err)
			}
			args = append(args, v)
		case c == '-' || (c >= '0' && c <= '9'):
			end = scanJSONNumber(s, i)
			if end < 0 {
				return nil, fmt.Errorf("%w: element %d: bad number", ErrSyntax, len(args))
			}
			args = append(args, s[i:end])
		default:
			return nil, fmt.Errorf("%w: element %d: want a string or a number, got %s", ErrSyntax, len(args), jsonKind(s[i:]))
		}
		i = skipJSONSpace(s, end)
		if i == len(s) {
			return nil, fmt.Errorf("%w: bad JSON array: unterminated", ErrSyntax)
		}
		if s[i] == ']' {
			break
		}
		if s[i] != ',' {
			return nil, fmt.Errorf("%w: bad JSON array: want ',' or ']' at byte %d", ErrSyntax, i)
		}
		i = skipJSONSpace(s, i+1)
	}
	if skipJSONSpace(s, i+1) != len(s) {
		return nil, fmt.Errorf("%w: bad JSON array: data after the closing bracket", ErrSyntax)
	}
	return args, nil
}

func skipJSONSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// scanJSONString returns the index after the closing quote of the string
// starting at s[i] == '"', and whether it holds escapes.
func scanJSONString(s string, i int) (end int, escaped bool, err error) {
	for k := i + 1; k < len(s); k++ {
		switch c := s[k]; {
		case c == '"':
			return k + 1, escaped, nil
		case c == '\\':
			escaped = true
			k++
		case c < 0x20:
			return 0, false, fmt.Errorf("control character 0x%02x in string", c)
		}
	}
	return 0, false, fmt.Errorf("unterminated string")
}

// scanJSONNumber returns the index after the JSON number at s[i], or -1.
func scanJSONNumber(s string, i int) int {
	digits := func(i int) int {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// isBlank is C's isspace, which redis-cli uses to skip between arguments.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// endsToken reports the bytes that end an unquoted argument in sdssplitargs.
func endsToken(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// splitArgs implements redis-cli's sdssplitargs. Arguments without quotes
// share the line's memory; only quoted ones are copied.
func splitArgs(line string) ([]string, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return nil, fmt.Errorf("%w: NUL byte in command line (send a JSON array for binary values)", ErrSyntax)
	}
	args := make([]string, 0, 4)
	var buf []byte
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		quoted := false
		buf = buf[:0]
		for i < len(line) && !endsToken(line[i]) {
			c := line[i]
			if c != '"' && c != '\'' {
				buf = append(buf, c)
				i++
				continue
			}
			quoted = true
			var err error
			if c == '"' {
				buf, i, err = readDoubleQuoted(line, i+1, buf)
			} else {
				buf, i, err = readSingleQuoted(line, i+1, buf)
			}
			if err != nil {
				return nil, err
			}
			// i is past the closing quote, which must end the argument.
			if i < len(line) && !isBlank(line[i]) {
				return nil, fmt.Errorf("%w: closing quote must be followed by a space (at byte %d)", ErrSyntax, i)
			}
			break
		}
		if quoted {
			args = append(args, string(buf))
		} else {
			args = append(args, line[start:i])
		}
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrSyntax)
	}
	return args, nil
}

func readDoubleQuoted(line string, i int, buf []byte) ([]byte, int, error) {
	for i < len(line) {
		c := line[i]
		switch {
		case c == '\\' && i+3 < len(line) && line[i+1] == 'x':
			hi, ok1 := hexVal(line[i+2])
			lo, ok2 := hexVal(line[i+3])
			if ok1 && ok2 {
				buf = append(buf, hi<<4|lo)
				i += 4
				continue
			}
			buf = append(buf, 'x')
			i += 2
		case c == '\\' && i+1 < len(line):
			switch e := line[i+1]; e {
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'b':
				buf = append(buf, '\b')
			case 'a':
				buf = append(buf, '\a')
			default:
				buf = append(buf, e)
			}
			i += 2
		case c == '"':
			return buf, i + 1, nil
		default:
			buf = append(buf, c)
			i++
		}
	}
	return nil, i, fmt.Errorf("%w: unbalanced double quotes", ErrSyntax)
}

func readSingleQuoted(line string, i int, buf []byte) ([]byte, int, error) {
	for i < len(line) {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
			buf = append(buf, '\'')
			i += 2
		case c == '\'':
			return buf, i + 1, nil
		default:
			buf = append(buf, c)
			i++
		}
	}
	return nil, i, fmt.Errorf("%w: unbalanced single quotes", ErrSyntax)
}

// jsonKind names the JSON value at the start of s for an error message.
func jsonKind(s string) string {
	switch s[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return fmt.Sprintf("%q", truncate(s, 16))
}
