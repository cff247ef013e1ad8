package store

import (
	"context"
	"errors"
)

// Hash, list and set commands.

func cmdHSet(ctx context.Context, s *Store, args []string) (any, error) {
	if len(args)%2 != 1 {
		return nil, cmdErr("ERR wrong number of arguments for 'hset' command")
	}
	fields := make([]FieldValue, 0, len(args)/2)
	for i := 1; i < len(args); i += 2 {
		fields = append(fields, FieldValue{Field: args[i], Value: []byte(args[i+1])})
	}
	n, err := s.HSet(ctx, args[0], fields...)
	return int64(n), err
}

func cmdHGet(ctx context.Context, s *Store, args []string) (any, error) {
	v, err := s.HGet(ctx, args[0], args[1])
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return string(v), nil
}

func cmdHGetAll(ctx context.Context, s *Store, args []string) (any, error) {
	fields, err := s.HGetAll(ctx, args[0])
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		m[f.Field] = string(f.Value)
	}
	return m, nil
}

func cmdHDel(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.HDel(ctx, args[0], args[1:]...)
	return int64(n), err
}

func cmdHIncrBy(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := parseInt(args[2])
	if err != nil {
		return nil, err
	}
	return s.HIncrBy(ctx, args[0], args[1], n)
}

func cmdHLen(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.HLen(ctx, args[0])
	return int64(n), err
}

func pushCmd(head bool) func(context.Context, *Store, []string) (any, error) {
	return func(ctx context.Context, s *Store, args []string) (any, error) {
		values := make([][]byte, len(args)-1)
		for i, a := range args[1:] {
			values[i] = []byte(a)
		}
		if head {
			return s.LPush(ctx, args[0], values...)
		}
		return s.RPush(ctx, args[0], values...)
	}
}

func parseRange(args []string) (int64, int64, error) {
	start, err := parseInt(args[0])
	if err != nil {
		return 0, 0, err
	}
	stop, err := parseInt(args[1])
	if err != nil {
		return 0, 0, err
	}
	return start, stop, nil
}

func cmdLRange(ctx context.Context, s *Store, args []string) (any, error) {
	start, stop, err := parseRange(args[1:])
	if err != nil {
		return nil, err
	}
	items, err := s.LRange(ctx, args[0], start, stop)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, v := range items {
		out[i] = string(v)
	}
	return out, nil
}

func cmdLLen(ctx context.Context, s *Store, args []string) (any, error) {
	return s.LLen(ctx, args[0])
}

func cmdLTrim(ctx context.Context, s *Store, args []string) (any, error) {
	start, stop, err := parseRange(args[1:])
	if err != nil {
		return nil, err
	}
	if err := s.LTrim(ctx, args[0], start, stop); err != nil {
		return nil, err
	}
	return "OK", nil
}

func cmdSAdd(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.SAdd(ctx, args[0], args[1:]...)
	return int64(n), err
}

func cmdSRem(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.SRem(ctx, args[0], args[1:]...)
	return int64(n), err
}

func cmdSMembers(ctx context.Context, s *Store, args []string) (any, error) {
	m, err := s.SMembers(ctx, args[0])
	if m == nil {
		m = []string{}
	}
	return m, err
}

func cmdSIsMember(ctx context.Context, s *Store, args []string) (any, error) {
	ok, err := s.SIsMember(ctx, args[0], args[1])
	return boolInt(ok), err
}

func cmdSCard(ctx context.Context, s *Store, args []string) (any, error) {
	n, err := s.SCard(ctx, args[0])
	return int64(n), err
}
