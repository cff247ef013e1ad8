package store

import "fmt"

// Glob patterns as Redis KEYS/SCAN MATCH understand them: '*' any run of
// bytes, '?' one byte, '[abc]' '[a-z]' '[^a]' a class, '\x' a literal x.
// Matching is byte-wise and case-sensitive. The matcher backtracks only to
// the last '*', so a pattern like "*a*a*a*b" cannot take exponential time
// (a problem Redis itself once had).

type globTok struct {
	kind   byte // 'l' literal, '?' any, '*' star, '[' class
	c      byte
	negate bool
	ranges [][2]byte
}

type glob []globTok

// maxGlob bounds a pattern's length.
const maxGlob = 1024

func compileGlob(pattern string) (glob, error) {
	if pattern == "" || pattern == "*" {
		return nil, nil // match everything
	}
	if len(pattern) > maxGlob {
		return nil, fmt.Errorf("%w: pattern longer than %d bytes", ErrSyntax, maxGlob)
	}
	var g glob
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			if len(g) > 0 && g[len(g)-1].kind == '*' {
				continue
			}
			g = append(g, globTok{kind: '*'})
		case '?':
			g = append(g, globTok{kind: '?'})
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
			g = append(g, globTok{kind: 'l', c: pattern[i]})
		case '[':
			t := globTok{kind: '['}
			i++
			if i < len(pattern) && pattern[i] == '^' {
				t.negate = true
				i++
			}
			for ; i < len(pattern) && pattern[i] != ']'; i++ {
				lo := pattern[i]
				if lo == '\\' && i+1 < len(pattern) {
					i++
					lo = pattern[i]
				}
				hi := lo
				if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
					hi = pattern[i+2]
					i += 2
					if hi == '\\' && i+1 < len(pattern) {
						i++
						hi = pattern[i]
					}
				}
				if lo > hi {
					lo, hi = hi, lo
				}
				t.ranges = append(t.ranges, [2]byte{lo, hi})
			}
			// An unterminated class ends at the end of the pattern, as in
			// Redis.
			g = append(g, t)
		default:
			g = append(g, globTok{kind: 'l', c: c})
		}
	}
	return g, nil
}

func (t *globTok) matches(c byte) bool {
	switch t.kind {
	case 'l':
		return t.c == c
	case '?':
		return true
	case '[':
		in := false
		for _, r := range t.ranges {
			if c >= r[0] && c <= r[1] {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}

// match reports whether s matches the whole pattern. A nil glob matches
// everything.
func (g glob) match(s []byte) bool {
	if g == nil {
		return true
	}
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(g) && g[p].kind == '*':
			star, mark = p, i
			p++
		case p < len(g) && g[p].matches(s[i]):
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(g) && g[p].kind == '*' {
		p++
	}
	return p == len(g)
}
