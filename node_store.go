package ferrite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrite-edge/ferrite/crdt"
	"github.com/ferrite-edge/ferrite/store"
)

// storeOptions maps the configuration onto the store's options.
func (n *Node) storeOptions() (store.Options, error) {
	cfg := n.cfg
	lim := cfg.Edge.Limits()
	dur, err := store.ParseDurability(cfg.Store.Durability)
	if err != nil {
		return store.Options{}, err
	}
	res, err := cfg.Edge.resolver()
	if err != nil {
		return store.Options{}, err
	}
	role := crdt.RoleEdge
	if cfg.Mode == ModeHub {
		role = crdt.RoleHub
	}
	return store.Options{
		NodeID:               cfg.NodeID,
		Role:                 role,
		Dir:                  cfg.DataDir,
		WALDir:               cfg.Edge.QueuePath,
		NoUpstream:           cfg.Mode == ModeEdge && cfg.Edge.HubURL == "",
		Durability:           dur,
		SyncInterval:         cfg.Store.DurabilityInterval.D(),
		MemoryLimit:          int64(lim.MemoryLimit),
		StorageLimit:         int64(lim.StorageLimit),
		MaxKeys:              lim.MaxKeys,
		CompressionLevel:     lim.CompressionLevel,
		Resolver:             res,
		MaxClockSkew:         cfg.Sync.MaxClockSkew.D(),
		MaxReadingsPerSensor: cfg.Ingest.MaxReadingsPerSensor,
		MaxSensors:           cfg.Ingest.MaxSensors,
		NewActor:             n.newActor,
		Logger:               n.log,
		Registerer:           n.reg,
	}, nil
}

// resolver builds the conflict resolver of edge.conflict_resolution and
// edge.conflict_rules. Sensor buckets (agg/) always merge.
func (e *EdgeConfig) resolver() (crdt.Resolver, error) {
	def, err := crdt.ParseStrategy(e.Strategy())
	if err != nil {
		return crdt.Resolver{}, fmt.Errorf("edge.conflict_resolution: %w", err)
	}
	r := crdt.Resolver{Default: def}
	for _, rule := range e.Rules() {
		s, err := crdt.ParseStrategy(rule.Strategy)
		if err != nil {
			return crdt.Resolver{}, fmt.Errorf("edge.conflict_rules %q: %w", rule.Prefix, err)
		}
		r.Prefixes = append(r.Prefixes, crdt.PrefixRule{Prefix: rule.Prefix, Strategy: s})
	}
	return r, r.Validate()
}

// openStore opens the node's store and registers its commands.
func (n *Node) openStore(ctx context.Context) error {
	opts, err := n.storeOptions()
	if err != nil {
		return fmt.Errorf("ferrite: store: %w", err)
	}
	st, err := store.Open(ctx, opts)
	if err != nil {
		return fmt.Errorf("ferrite: %w", err)
	}
	n.store = st
	n.push("store", func(context.Context) error { return st.Close() })
	for _, c := range store.Commands() {
		run := c.Run
		if err := n.register(c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help,
			func(ctx context.Context, args []string) (any, error) { return run(ctx, st, args) }); err != nil {
			return err
		}
	}
	n.AddStatus("store", func(ctx context.Context) map[string]any {
		keys, _ := st.DBSize(ctx)
		return map[string]any{"keys": keys, "store_bytes": st.DiskUsage()}
	})
	return nil
}

// Store is the node's CRDT key-value store: the full Go API of every
// command (nil before Start).
func (n *Node) Store() *store.Store { return n.store }

// The embedding API of the feature document ("Programmatic Usage"): every
// read and write works offline; Sync pushes pending changes to the hub.
// These are shorthands for the most common calls; Store offers the rest.

// Set sets key to value (a string register, replicated).
func (n *Node) Set(ctx context.Context, key, value string) error {
	if n.store == nil {
		return ErrNodeNotStarted
	}
	return n.store.Set(ctx, key, []byte(value))
}

// SetEX sets key to value, expiring after ttl.
func (n *Node) SetEX(ctx context.Context, key, value string, ttl time.Duration) error {
	if n.store == nil {
		return ErrNodeNotStarted
	}
	_, err := n.store.SetWith(ctx, key, []byte(value), store.SetOptions{TTL: ttl})
	return err
}

// Get returns key's value; ok is false when the key does not exist.
func (n *Node) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	if n.store == nil {
		return "", false, ErrNodeNotStarted
	}
	v, err := n.store.Get(ctx, key)
	switch {
	case err == nil:
		return string(v), true, nil
	case errors.Is(err, store.ErrNotFound):
		return "", false, nil
	}
	return "", false, err
}

// Del deletes keys and returns how many existed.
func (n *Node) Del(ctx context.Context, keys ...string) (int, error) {
	if n.store == nil {
		return 0, ErrNodeNotStarted
	}
	return n.store.Del(ctx, keys...)
}

// IncrBy adds delta to the counter at key and returns the new value.
func (n *Node) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	if n.store == nil {
		return 0, ErrNodeNotStarted
	}
	return n.store.IncrBy(ctx, key, delta)
}

// HIncrBy adds delta to a hash field's counter and returns the new value.
func (n *Node) HIncrBy(ctx context.Context, key, field string, delta int64) (int64, error) {
	if n.store == nil {
		return 0, ErrNodeNotStarted
	}
	return n.store.HIncrBy(ctx, key, field, delta)
}

// LPush prepends values to the list at key and returns its length.
func (n *Node) LPush(ctx context.Context, key string, values ...string) (int64, error) {
	if n.store == nil {
		return 0, ErrNodeNotStarted
	}
	bs := make([][]byte, len(values))
	for i, v := range values {
		bs[i] = []byte(v)
	}
	return n.store.LPush(ctx, key, bs...)
}
