package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzCommands runs arbitrary command lines against a real store: no
// panic, every error a Redis-style CommandError, every result
// JSON-encodable.
func FuzzCommands(f *testing.F) {
	for _, seed := range []string{
		`SET sensor:temp:001 23.5 EX 86400`,
		`SET k v NX PX 100`,
		`SET k v KEEPTTL XX`,
		`SET k v EXAT 1 PXAT 2`,
		`GET k`, `DEL k k2`, `EXISTS k`, `EXPIRE k -1`, `PEXPIRE k 9223372036854775807`,
		`TTL k`, `PTTL k`, `PERSIST k`, `INCR n`, `INCRBY n -9223372036854775808`, `DECRBY n -9223372036854775808`,
		`HSET h f v f2 v2`, `HGET h f`, `HGETALL h`, `HDEL h f`, `HINCRBY h c 5`,
		`LPUSH l a b`, `RPUSH l c`, `LRANGE l -100 100`, `LLEN l`, `LTRIM l 1 -1`,
		`SADD s a b`, `SREM s a`, `SMEMBERS s`, `SISMEMBER s a`, `KEYS *[a-`, `SCAN 0 MATCH \ COUNT 3`, `DBSIZE`, `TYPE l`,
	} {
		f.Add(seed)
	}
	s := openTest(f, func(o *Options) { o.MaxKeys = 1000 })
	cmds := commandTable()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if len(args) == 0 {
			return
		}
		c, ok := cmds[strings.ToUpper(args[0])]
		if !ok {
			return
		}
		res, err := c.Run(ctx, s, args[1:])
		if err != nil {
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("%q: error %v is not a CommandError", line, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ERR ") && !strings.HasPrefix(msg, "WRONGTYPE ") && !strings.HasPrefix(msg, "OOM ") {
				t.Fatalf("%q: error %q has no Redis prefix", line, msg)
			}
			return
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("%q: result %#v: %v", line, res, err)
		}
	})
}

// FuzzGlob checks the matcher against a naive backtracking reference on
// patterns without classes, and that it never panics.
func FuzzGlob(f *testing.F) {
	f.Add("sensor:*", "sensor:1")
	f.Add("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("[^a-c]?\\*", "d1*")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := compileGlob(pattern)
		if err != nil {
			return
		}
		got := g.match([]byte(s))
		if strings.ContainsAny(pattern, "[\\") {
			return
		}
		if want := naiveMatch(pattern, s); got != want && pattern != "" {
			t.Fatalf("match(%q, %q) = %v, want %v", pattern, s, got, want)
		}
	})
}

func naiveMatch(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if naiveMatch(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && naiveMatch(p[1:], s[1:])
	}
	return s != "" && s[0] == p[0] && naiveMatch(p[1:], s[1:])
}

func TestGlob(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"", "anything", true}, // empty: match all (SCAN without MATCH)
		{"a*", "abc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[a-c]x", "bx", true},
		{"[c-a]x", "bx", true}, // reversed range
		{"[^a-c]x", "bx", false},
		{"[abc", "b", true}, // unterminated class
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"h*llo", "heeeello", true},
		{"*a*a*a*b", strings.Repeat("a", 40), false},
	}
	for _, tc := range tests {
		g, err := compileGlob(tc.p)
		check(t, err)
		if got := g.match([]byte(tc.s)); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
	if _, err := compileGlob(strings.Repeat("a", maxGlob+1)); !errors.Is(err, ErrSyntax) {
		t.Fatal("long pattern accepted")
	}
}
