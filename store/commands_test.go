package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
)

// splitArgs splits a command line like redis-cli: whitespace separated,
// single or double quotes group (no escapes needed by these tests).
func splitArgs(line string) []string {
	var out []string
	var cur strings.Builder
	quote := rune(0)
	in := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case unicode.IsSpace(r):
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func commandTable() map[string]Command {
	m := make(map[string]Command)
	for _, c := range Commands() {
		m[c.Name] = c
	}
	return m
}

// run executes a command line and returns its JSON reply (or error text).
func run(t testing.TB, s *Store, cmds map[string]Command, line string) string {
	t.Helper()
	args := splitArgs(line)
	c, ok := cmds[strings.ToUpper(args[0])]
	if !ok {
		t.Fatalf("unknown command %q", args[0])
	}
	res, err := c.Run(context.Background(), s, args[1:])
	if err != nil {
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: error %v is not a CommandError", line, err)
		}
		return "error: " + err.Error()
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("%s: result %#v not JSON-encodable: %v", line, res, err)
	}
	return string(b)
}

type cmdCase struct {
	line, want string
}

func runScript(t *testing.T, s *Store, script []cmdCase) {
	t.Helper()
	cmds := commandTable()
	for _, c := range script {
		if got := run(t, s, cmds, c.line); got != c.want {
			t.Errorf("%s\n got: %s\nwant: %s", c.line, got, c.want)
		}
	}
}

func TestCommandsFeatureDocumentExamples(t *testing.T) {
	clock := newTestClock()
	s := openTest(t, withClock(clock))
	runScript(t, s, []cmdCase{
		{`SET sensor:temp:001 "23.5" EX 86400`, `"OK"`},
		{`GET sensor:temp:001`, `"23.5"`},
		{`TTL sensor:temp:001`, `86400`},
		{`LPUSH sensor:log:001 '{"temp":23.5,"ts":1708300000}'`, `1`},
		{`LRANGE sensor:log:001 0 -1`, `["{\"temp\":23.5,\"ts\":1708300000}"]`},
		{`HINCRBY store:42:daily_revenue 2025-02-19 4999`, `4999`},
		{`HINCRBY store:42:daily_revenue 2025-02-19 1`, `5000`},
		{`HGETALL store:42:daily_revenue`, `{"2025-02-19":"5000"}`},
		{`LPUSH store:42:transactions '{"id":"tx-001","amount":49.99}'`, `1`},
		{`LLEN store:42:transactions`, `1`},
		{`DBSIZE`, `4`},
	})
}

func TestCommandsStrings(t *testing.T) {
	clock := newTestClock()
	s := openTest(t, withClock(clock))
	runScript(t, s, []cmdCase{
		{`GET k`, `null`},
		{`SET k v`, `"OK"`},
		{`SET k v2 NX`, `null`},
		{`SET k v3 XX`, `"OK"`},
		{`GET k`, `"v3"`},
		{`SET other v XX`, `null`},
		{`EXISTS other`, `0`},
		{`SET k v NX XX`, `error: ERR syntax error`},
		{`SET k v EX 0`, `error: ERR invalid expire time in 'set' command`},
		{`SET k v EX -5`, `error: ERR invalid expire time in 'set' command`},
		{`SET k v EX abc`, `error: ERR value is not an integer or out of range`},
		{`SET k v EX 10 PX 100`, `error: ERR syntax error`},
		{`SET k v EX`, `error: ERR syntax error`},
		{`SET k v BOGUS`, `error: ERR syntax error`},
		{`SET k v EX 99999999999999999`, `error: ERR invalid expire time in 'set' command`},
		{`SET k`, `error: ERR wrong number of arguments for 'set' command`},
		{`SET k v PX 1500`, `"OK"`},
		{`PTTL k`, `1500`},
		{`TTL k`, `2`},
		{`SET k v KEEPTTL`, `"OK"`},
		{`PTTL k`, `1500`},
		{`SET k v`, `"OK"`},
		{`TTL k`, `-1`},
		{`TTL missing`, `-2`},
		{`INCR n`, `1`},
		{`INCRBY n 41`, `42`},
		{`DECR n`, `41`},
		{`DECRBY n 50`, `-9`},
		{`GET n`, `"-9"`},
		{`INCRBY n x`, `error: ERR value is not an integer or out of range`},
		{`INCR k`, `error: ERR value is not an integer or out of range`},
		{`SET big 9223372036854775807`, `"OK"`},
		{`INCR big`, `error: ERR increment or decrement would overflow`},
		{`DECRBY n -9223372036854775808`, `error: ERR increment or decrement would overflow`},
		{`SET s10 10`, `"OK"`},
		{`INCR s10`, `11`},
		{`TYPE s10`, `"string"`},
		{`TYPE missing`, `"none"`},
		{`DEL k n missing k`, `2`},
		{`EXISTS k n s10 s10`, `2`},
		{`SET g first GET`, `null`},
		{`SET g second GET`, `"first"`},
		{`SET g third NX GET`, `"second"`},
		{`GET g`, `"second"`},
		{`SET g 4th get EX 10`, `"second"`},
		{`TTL g`, `10`},
		{`STRLEN g`, `3`},
		{`STRLEN s10`, `2`},
		{`STRLEN missing`, `0`},
		{`RPUSH l a`, `1`},
		{`SET l v GET`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`TYPE l`, `"list"`},
		{`STRLEN l`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
	})
}

func TestCommandsExpire(t *testing.T) {
	clock := newTestClock()
	s := openTest(t, withClock(clock))
	runScript(t, s, []cmdCase{
		{`EXPIRE missing 10`, `0`},
		{`SET k v`, `"OK"`},
		{`EXPIRE k 10`, `1`},
		{`TTL k`, `10`},
		{`PEXPIRE k 2500`, `1`},
		{`PTTL k`, `2500`},
		{`PERSIST k`, `1`},
		{`PERSIST k`, `0`},
		{`TTL k`, `-1`},
		{`EXPIRE k abc`, `error: ERR value is not an integer or out of range`},
		{`EXPIRE k 99999999999999999`, `error: ERR invalid expire time in 'expire' command`},
		{`EXPIRE k 5`, `1`},
	})
	clock.advance(5 * time.Second)
	runScript(t, s, []cmdCase{
		{`GET k`, `null`},
		{`EXISTS k`, `0`},
		{`TTL k`, `-2`},
		{`DBSIZE`, `1`}, // counted until swept, as in Redis
	})
	if n := must[int](t)(s.SweepExpired(context.Background(), 10)); n != 1 {
		t.Fatalf("swept %d keys", n)
	}
	runScript(t, s, []cmdCase{
		{`DBSIZE`, `0`},
		{`SET k v`, `"OK"`},
		{`EXPIRE k 0`, `1`}, // a non-positive TTL deletes
		{`EXISTS k`, `0`},
		{`DBSIZE`, `0`},
	})
}

func TestCommandsHashes(t *testing.T) {
	s := openTest(t)
	runScript(t, s, []cmdCase{
		{`HSET h f1 v1 f2 v2`, `2`},
		{`HSET h f1 x f3 v3`, `1`},
		{`HSET h f1`, `error: ERR wrong number of arguments for 'hset' command`},
		{`HGET h f1`, `"x"`},
		{`HGET h nope`, `null`},
		{`HGET missing f`, `null`},
		{`HGETALL h`, `{"f1":"x","f2":"v2","f3":"v3"}`},
		{`HGETALL missing`, `{}`},
		{`HLEN h`, `3`},
		{`HDEL h f1 nope f1`, `1`},
		{`HDEL h nope`, `0`},
		{`HINCRBY h c 5`, `5`},
		{`HINCRBY h c -7`, `-2`},
		{`HINCRBY h f2 1`, `error: ERR value is not an integer or out of range`},
		{`HINCRBY h c x`, `error: ERR value is not an integer or out of range`},
		{`TYPE h`, `"hash"`},
		{`SET str v`, `"OK"`},
		{`HSET str f v`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`HGET str f`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`HINCRBY str f 1`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`GET h`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`HDEL h f2 f3 c`, `3`},
		{`EXISTS h`, `0`},
	})
}

func TestCommandsLists(t *testing.T) {
	s := openTest(t)
	runScript(t, s, []cmdCase{
		{`LPUSH l a b c`, `3`},
		{`RPUSH l x y`, `5`},
		{`LRANGE l 0 -1`, `["c","b","a","x","y"]`},
		{`LRANGE l 1 2`, `["b","a"]`},
		{`LRANGE l -2 -1`, `["x","y"]`},
		{`LRANGE l 10 20`, `[]`},
		{`LRANGE l a 1`, `error: ERR value is not an integer or out of range`},
		{`LRANGE missing 0 -1`, `[]`},
		{`LLEN l`, `5`},
		{`LLEN missing`, `0`},
		{`LTRIM l 0 2`, `"OK"`},
		{`LRANGE l 0 -1`, `["c","b","a"]`},
		{`LTRIM l 5 10`, `"OK"`},
		{`LLEN l`, `0`},
		{`EXISTS l`, `0`},
		{`SET str v`, `"OK"`},
		{`LPUSH str a`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`LRANGE str 0 1`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`LLEN str`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`LTRIM str 0 1`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`TYPE l`, `"none"`},
		{`RPUSH l2 one`, `1`},
		{`TYPE l2`, `"list"`},
	})
}

func TestCommandsSets(t *testing.T) {
	s := openTest(t)
	runScript(t, s, []cmdCase{
		{`SADD s a b c a`, `3`},
		{`SADD s c d`, `1`},
		{`SMEMBERS s`, `["a","b","c","d"]`},
		{`SISMEMBER s a`, `1`},
		{`SISMEMBER s z`, `0`},
		{`SISMEMBER missing z`, `0`},
		{`SCARD s`, `4`},
		{`SREM s a z a`, `1`},
		{`SREM s z`, `0`},
		{`SMEMBERS missing`, `[]`},
		{`TYPE s`, `"set"`},
		{`SET str v`, `"OK"`},
		{`SADD str a`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`SMEMBERS str`, `error: WRONGTYPE Operation against a key holding the wrong kind of value`},
		{`SREM s b c d`, `3`},
		{`EXISTS s`, `0`},
	})
}

func TestCommandsKeysScan(t *testing.T) {
	s := openTest(t)
	cmds := commandTable()
	for _, k := range []string{"sensor:1", "sensor:2", "sensor:10", "store:42", "other"} {
		run(t, s, cmds, "SET "+k+" v")
	}
	runScript(t, s, []cmdCase{
		{`KEYS *`, `["other","sensor:1","sensor:10","sensor:2","store:42"]`},
		{`KEYS sensor:?`, `["sensor:1","sensor:2"]`},
		{`KEYS s*`, `["sensor:1","sensor:10","sensor:2","store:42"]`},
		{`KEYS sensor:[12]`, `["sensor:1","sensor:2"]`},
		{`KEYS sensor:[^1]`, `["sensor:2"]`},
		{`KEYS nothing*`, `[]`},
		{`DEL other`, `1`},
		{`KEYS *`, `["sensor:1","sensor:10","sensor:2","store:42"]`},
		{`SCAN 0 COUNT 0`, `error: ERR syntax error`},
		{`SCAN 0 COUNT x`, `error: ERR value is not an integer or out of range`},
		{`SCAN 0 MATCH`, `error: ERR syntax error`},
		{`SCAN zz`, `error: ERR invalid cursor`},
		{`SCAN 0 BOGUS 1`, `error: ERR syntax error`},
		{`HSET h f v`, `1`},
		{`SCAN 0 COUNT 100 TYPE hash`, `["0",["h"]]`},
		{`SCAN 0 MATCH s* TYPE string COUNT 100`, `["0",["sensor:1","sensor:10","sensor:2","store:42"]]`},
		{`SCAN 0 TYPE list`, `["0",[]]`},
		{`DEL h`, `1`},
	})
	// A full SCAN with a small COUNT returns every key exactly once.
	var got []string
	cursor := "0"
	for i := 0; ; i++ {
		res := run(t, s, cmds, "SCAN "+cursor+" MATCH s* COUNT 2")
		var reply []json.RawMessage
		check(t, json.Unmarshal([]byte(res), &reply))
		var keys []string
		check(t, json.Unmarshal(reply[0], &cursor))
		check(t, json.Unmarshal(reply[1], &keys))
		got = append(got, keys...)
		if cursor == "0" {
			break
		}
		if i > 10 {
			t.Fatal("SCAN does not terminate")
		}
	}
	if strings.Join(got, ",") != "sensor:1,sensor:10,sensor:2,store:42" {
		t.Fatalf("SCAN returned %v", got)
	}
}

func TestCommandsLimits(t *testing.T) {
	s := openTest(t, func(o *Options) {
		o.MaxKeys = 2
		o.MaxKeySize = 8
		o.MaxValueSize = 16
	})
	runScript(t, s, []cmdCase{
		{`SET a 1`, `"OK"`},
		{`SET b 1`, `"OK"`},
		{`SET c 1`, `error: OOM command not allowed: too many keys: 2 keys (max 2)`},
		{`SET a 2`, `"OK"`}, // overwriting does not create a key
		{`LPUSH c x`, `error: OOM command not allowed: too many keys: 2 keys (max 2)`},
		{`SET 123456789 v`, `error: ERR key too large: 9 bytes (max 8)`},
		{`SET a 12345678901234567`, `error: ERR value too large: 17 bytes (max 16)`},
		{`HSET a2 f 12345678901234567`, `error: ERR value too large: 17 bytes (max 16)`},
		{`DEL b`, `1`},
		{`SET c 1`, `"OK"`},
		{`DBSIZE`, `2`},
	})
	s.SetRefuseWrites("memory critical")
	runScript(t, s, []cmdCase{
		{`SET a 3`, `error: OOM command not allowed: writes refused: memory critical`},
		{`GET a`, `"2"`},
		{`DEL a`, `1`}, // deletes still work
	})
	s.SetRefuseWrites("")
	runScript(t, s, []cmdCase{{`SET a 3`, `"OK"`}})
}

func TestCommandsArgCounts(t *testing.T) {
	s := openTest(t)
	for _, c := range Commands() {
		if c.MinArgs > 0 {
			_, err := c.Run(context.Background(), s, make([]string, c.MinArgs-1))
			if err == nil || !strings.HasPrefix(err.Error(), "ERR wrong number of arguments") {
				t.Errorf("%s with %d args: %v", c.Name, c.MinArgs-1, err)
			}
		}
		if c.MaxArgs >= 0 {
			_, err := c.Run(context.Background(), s, make([]string, c.MaxArgs+1))
			if err == nil || !strings.HasPrefix(err.Error(), "ERR wrong number of arguments") {
				t.Errorf("%s with %d args: %v", c.Name, c.MaxArgs+1, err)
			}
		}
		if c.Help == "" || c.Name != strings.ToUpper(c.Name) {
			t.Errorf("%s: bad name or help", c.Name)
		}
	}
}
