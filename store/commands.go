package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Commands: the key-value operations as transport-neutral commands, for
// the root package to register on the MQTT command router. Arguments
// exclude the command name; results are JSON-encodable (string, int64,
// []string, map[string]string, []any, nil for a Redis nil reply); errors
// carry the text a Redis user expects ("WRONGTYPE ...", "ERR syntax
// error", ...).

// Command is one key-value command.
type Command struct {
	Name             string
	MinArgs, MaxArgs int // MaxArgs < 0: unbounded
	ReadOnly         bool
	Help             string
	Run              func(ctx context.Context, s *Store, args []string) (any, error)
}

// CommandError is an error with a Redis-style message.
type CommandError struct {
	Msg string
	Err error // the underlying error, if any
}

func (e *CommandError) Error() string { return e.Msg }
func (e *CommandError) Unwrap() error { return e.Err }

func cmdErr(format string, args ...any) error {
	return &CommandError{Msg: fmt.Sprintf(format, args...)}
}

var (
	errSyntax     = &CommandError{Msg: "ERR syntax error", Err: ErrSyntax}
	errNotInteger = &CommandError{Msg: "ERR value is not an integer or out of range", Err: ErrNotInteger}
)

// redisError maps a store error to its Redis-style reply.
func redisError(cmd string, err error) error {
	var ce *CommandError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, ErrWrongType):
		return &CommandError{Msg: "WRONGTYPE Operation against a key holding the wrong kind of value", Err: err}
	case errors.Is(err, ErrNotInteger):
		return &CommandError{Msg: "ERR value is not an integer or out of range", Err: err}
	case errors.Is(err, ErrOverflow):
		return &CommandError{Msg: "ERR increment or decrement would overflow", Err: err}
	case errors.Is(err, ErrSyntax):
		return &CommandError{Msg: "ERR syntax error", Err: err}
	case errors.Is(err, ErrBadTTL):
		return &CommandError{Msg: fmt.Sprintf("ERR invalid expire time in '%s' command", strings.ToLower(cmd)), Err: err}
	case errors.Is(err, ErrWritesRefused), errors.Is(err, ErrStorageFull), errors.Is(err, ErrTooManyKeys):
		return &CommandError{Msg: "OOM command not allowed: " + strings.TrimPrefix(err.Error(), "store: "), Err: err}
	}
	return &CommandError{Msg: "ERR " + strings.TrimPrefix(err.Error(), "store: "), Err: err}
}

// Commands returns the key-value command table, sorted by name.
func Commands() []Command {
	cmds := []Command{
		{Name: "SET", MinArgs: 2, MaxArgs: 7, Help: "SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-seconds|PXAT unix-ms|KEEPTTL]", Run: cmdSet},
		{Name: "GET", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "GET key", Run: cmdGet},
		{Name: "STRLEN", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "STRLEN key", Run: cmdStrLen},
		{Name: "DEL", MinArgs: 1, MaxArgs: -1, Help: "DEL key [key ...]", Run: cmdDel},
		{Name: "EXISTS", MinArgs: 1, MaxArgs: -1, ReadOnly: true, Help: "EXISTS key [key ...]", Run: cmdExists},
		{Name: "EXPIRE", MinArgs: 2, MaxArgs: 2, Help: "EXPIRE key seconds", Run: expireCmd(time.Second)},
		{Name: "PEXPIRE", MinArgs: 2, MaxArgs: 2, Help: "PEXPIRE key milliseconds", Run: expireCmd(time.Millisecond)},
		{Name: "TTL", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "TTL key (seconds; -1 no expiry, -2 no key)", Run: ttlCmd(time.Second)},
		{Name: "PTTL", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "PTTL key (milliseconds; -1 no expiry, -2 no key)", Run: ttlCmd(time.Millisecond)},
		{Name: "PERSIST", MinArgs: 1, MaxArgs: 1, Help: "PERSIST key", Run: cmdPersist},
		{Name: "TYPE", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "TYPE key", Run: cmdType},
		{Name: "INCR", MinArgs: 1, MaxArgs: 1, Help: "INCR key", Run: incrCmd(false, 1)},
		{Name: "DECR", MinArgs: 1, MaxArgs: 1, Help: "DECR key", Run: incrCmd(false, -1)},
		{Name: "INCRBY", MinArgs: 2, MaxArgs: 2, Help: "INCRBY key increment", Run: incrCmd(true, 1)},
		{Name: "DECRBY", MinArgs: 2, MaxArgs: 2, Help: "DECRBY key decrement", Run: incrCmd(true, -1)},
		{Name: "HSET", MinArgs: 3, MaxArgs: -1, Help: "HSET key field value [field value ...]", Run: cmdHSet},
		{Name: "HGET", MinArgs: 2, MaxArgs: 2, ReadOnly: true, Help: "HGET key field", Run: cmdHGet},
		{Name: "HGETALL", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "HGETALL key", Run: cmdHGetAll},
		{Name: "HDEL", MinArgs: 2, MaxArgs: -1, Help: "HDEL key field [field ...]", Run: cmdHDel},
		{Name: "HINCRBY", MinArgs: 3, MaxArgs: 3, Help: "HINCRBY key field increment", Run: cmdHIncrBy},
		{Name: "HLEN", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "HLEN key", Run: cmdHLen},
		{Name: "LPUSH", MinArgs: 2, MaxArgs: -1, Help: "LPUSH key value [value ...]", Run: pushCmd(true)},
		{Name: "RPUSH", MinArgs: 2, MaxArgs: -1, Help: "RPUSH key value [value ...]", Run: pushCmd(false)},
		{Name: "LRANGE", MinArgs: 3, MaxArgs: 3, ReadOnly: true, Help: "LRANGE key start stop", Run: cmdLRange},
		{Name: "LLEN", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "LLEN key", Run: cmdLLen},
		{Name: "LTRIM", MinArgs: 3, MaxArgs: 3, Help: "LTRIM key start stop", Run: cmdLTrim},
		{Name: "SADD", MinArgs: 2, MaxArgs: -1, Help: "SADD key member [member ...]", Run: cmdSAdd},
		{Name: "SREM", MinArgs: 2, MaxArgs: -1, Help: "SREM key member [member ...]", Run: cmdSRem},
		{Name: "SMEMBERS", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "SMEMBERS key", Run: cmdSMembers},
		{Name: "SISMEMBER", MinArgs: 2, MaxArgs: 2, ReadOnly: true, Help: "SISMEMBER key member", Run: cmdSIsMember},
		{Name: "SCARD", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "SCARD key", Run: cmdSCard},
		{Name: "KEYS", MinArgs: 1, MaxArgs: 1, ReadOnly: true, Help: "KEYS pattern", Run: cmdKeys},
		{Name: "SCAN", MinArgs: 1, MaxArgs: 7, ReadOnly: true, Help: "SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]", Run: cmdScan},
		{Name: "DBSIZE", MinArgs: 0, MaxArgs: 0, ReadOnly: true, Help: "DBSIZE", Run: cmdDBSize},
	}
	for i := range cmds {
		cmds[i].Run = guard(cmds[i])
	}
	return cmds
}

// guard checks the argument count (the router does too; Run must be safe
// on its own) and maps errors to Redis replies.
func guard(c Command) func(context.Context, *Store, []string) (any, error) {
	run := c.Run
	return func(ctx context.Context, s *Store, args []string) (any, error) {
		if len(args) < c.MinArgs || (c.MaxArgs >= 0 && len(args) > c.MaxArgs) {
			return nil, cmdErr("ERR wrong number of arguments for '%s' command", strings.ToLower(c.Name))
		}
		res, err := run(ctx, s, args)
		if err != nil {
			return nil, redisError(c.Name, err)
		}
		return res, nil
	}
}

func parseInt(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	return v, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// parseSetOptions parses SET's options after key and value.
func parseSetOptions(args []string) (SetOptions, error) {
	var o SetOptions
	expiry := false
	for i := 0; i < len(args); i++ {
		switch opt := strings.ToUpper(args[i]); opt {
		case "NX", "XX":
			if o.NX || o.XX {
				return o, errSyntax
			}
			o.NX, o.XX = opt == "NX", opt == "XX"
		case "KEEPTTL":
			if expiry {
				return o, errSyntax
			}
			expiry, o.KeepTTL = true, true
		case "EX", "PX", "EXAT", "PXAT":
			if expiry || i+1 >= len(args) {
				return o, errSyntax
			}
			i++
			n, err := parseInt(args[i])
			if err != nil {
				return o, err
			}
			if n <= 0 {
				return o, cmdErr("ERR invalid expire time in 'set' command")
			}
			expiry = true
			switch opt {
			case "EX":
				if n > math.MaxInt64/int64(time.Second) {
					return o, cmdErr("ERR invalid expire time in 'set' command")
				}
				o.TTL = time.Duration(n) * time.Second
			case "PX":
				if n > math.MaxInt64/int64(time.Millisecond) {
					return o, cmdErr("ERR invalid expire time in 'set' command")
				}
				o.TTL = time.Duration(n) * time.Millisecond
			case "EXAT":
				if n > math.MaxInt64/1000 {
					return o, cmdErr("ERR invalid expire time in 'set' command")
				}
				o.ExpireAt = time.UnixMilli(n * 1000)
			case "PXAT":
				o.ExpireAt = time.UnixMilli(n)
			}
		default:
			return o, errSyntax
		}
	}
	return o, nil
}

func cmdSet(ctx context.Context, s *Store, args []string) (any, error) {
	opts, get := args[2:], false
	if i := slices.IndexFunc(opts, func(a string) bool { return strings.EqualFold(a, "GET") }); i >= 0 {
		opts, get = slices.Delete(slices.Clone(opts), i, i+1), true
	}
	o, err := parseSetOptions(opts)
	if err != nil {
		return nil, err
	}
	if get {
		old, had, err := s.SetGet(ctx, args[0], []byte(args[1]), o)
		if err != nil || !had {
			return nil, err
		}
		return string(old), nil
	}
	ok, err := s.SetWith(ctx, args[0], []byte(args[1]), o)
	if err != nil || !ok {
		return nil, err
	}
	return "OK", nil
}

func cmdGet(ctx context.Context, s *Store, args []string) (any, error) {
	v, err := s.Get(ctx, args[0])
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return string(v), nil
}

func cmdStrLen(ctx context.Context, s *Store, args []string) (any, error) {
	v, err := s.Get(ctx, args[0])
	if errors.Is(err, ErrNotFound) {
		return int64(0), nil
	}
	return int64(len(v)), err
}

func cmdDel(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.Del(ctx, args...)
	return int64(n), err
}

func cmdExists(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.Exists(ctx, args...)
	return int64(n), err
}

func expireCmd(unit time.Duration) func(context.Context, *Store, []string) (any, error) {
	return func(ctx context.Context, s *Store, args []string) (any, error) {
		n, err := parseInt(args[1])
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			return nil, ErrBadTTL
		}
		ok, err := s.Expire(ctx, args[0], time.Duration(n)*unit)
		return boolInt(ok), err
	}
}

func ttlCmd(unit time.Duration) func(context.Context, *Store, []string) (any, error) {
	return func(ctx context.Context, s *Store, args []string) (any, error) {
		d, err := s.TTL(ctx, args[0])
		switch {
		case errors.Is(err, ErrNotFound):
			return int64(-2), nil
		case err != nil:
			return nil, err
		case d == NoExpiry:
			return int64(-1), nil
		}
		// Round up as Redis does (a key with 1.5s left has TTL 2).
		return int64((d + unit - 1) / unit), nil
	}
}

func cmdPersist(ctx context.Context, s *Store, args []string) (any, error) {
	ok, err := s.Persist(ctx, args[0])
	return boolInt(ok), err
}

func cmdType(ctx context.Context, s *Store, args []string) (any, error) {
	return s.Type(ctx, args[0])
}

func incrCmd(withArg bool, sign int64) func(context.Context, *Store, []string) (any, error) {
	return func(ctx context.Context, s *Store, args []string) (any, error) {
		n := int64(1)
		if withArg {
			var err error
			if n, err = parseInt(args[1]); err != nil {
				return nil, err
			}
		}
		if sign < 0 {
			if n == math.MinInt64 {
				return nil, ErrOverflow
			}
			n = -n
		}
		return s.IncrBy(ctx, args[0], n)
	}
}

func cmdKeys(ctx context.Context, s *Store, args []string) (any, error) {
	keys, err := s.Keys(ctx, args[0])
	if keys == nil {
		keys = []string{}
	}
	return keys, err
}

func cmdScan(ctx context.Context, s *Store, args []string) (any, error) {
	cursor := args[0]
	match, typ, count := "", "", 10
	for i := 1; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, errSyntax
		}
		switch strings.ToUpper(args[i]) {
		case "MATCH":
			match = args[i+1]
		case "TYPE":
			typ = strings.ToLower(args[i+1])
		case "COUNT":
			n, err := parseInt(args[i+1])
			if err != nil {
				return nil, err
			}
			if n < 1 {
				return nil, errSyntax
			}
			count = int(min(n, 1<<20))
		default:
			return nil, errSyntax
		}
	}
	if cursor != "0" {
		if _, err := parseCursor(cursor); err != nil {
			return nil, cmdErr("ERR invalid cursor")
		}
	}
	keys, next, err := s.ScanType(ctx, cursor, match, typ, count)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []string{}
	}
	return []any{next, keys}, nil
}

func cmdDBSize(ctx context.Context, s *Store, _ []string) (any, error) {
	return s.DBSize(ctx)
}
