package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// replica is what one node reports at one moment.
type replica struct {
	name    string
	keys    int64
	sync    string // sync_status (edges)
	pending int    // pending_ops (edges)
	link    bool   // hub_connected (edges)
	buckets map[string][]string
	demo    map[string]string // demo:* key → canonical "type value"
	digest  string
}

// snapshot asks every node for its state: the edges first, then the hub,
// so that a bucket an edge has is one the hub may already have.
type snapshot struct {
	replicas  []replica
	conflicts int
}

func (d *demo) snapshot(ctx context.Context) (snapshot, error) {
	var s snapshot
	for _, n := range append(slices.Clone(d.edges), d.hub) {
		r, err := d.replica(ctx, n)
		if err != nil {
			return s, fmt.Errorf("%s: %w", n.name, err)
		}
		s.replicas = append(s.replicas, r)
	}
	var confl []json.RawMessage
	if err := d.hub.cmd.doInto(ctx, &confl, "EDGE.CONFLICTS"); err != nil {
		return s, err
	}
	s.conflicts = len(confl)
	return s, nil
}

func (d *demo) replica(ctx context.Context, n *node) (replica, error) {
	r := replica{name: n.name, buckets: make(map[string][]string), demo: make(map[string]string)}
	if err := n.cmd.doInto(ctx, &r.keys, "DBSIZE"); err != nil {
		return r, err
	}
	if n != d.hub {
		var st struct {
			Sync    string `json:"sync_status"`
			Pending int    `json:"pending_ops"`
			Link    bool   `json:"hub_connected"`
		}
		if err := n.cmd.doInto(ctx, &st, "EDGE.STATUS"); err != nil {
			return r, err
		}
		r.sync, r.pending, r.link = st.Sync, st.Pending, st.Link
	}
	var aggs []string
	if err := n.cmd.doInto(ctx, &aggs, "KEYS", "agg/*"); err != nil {
		return r, err
	}
	for _, k := range aggs {
		// agg/<node>/<sensor>/<width>/<start>
		if origin, _, ok := strings.Cut(strings.TrimPrefix(k, "agg/"), "/"); ok {
			r.buckets[origin] = append(r.buckets[origin], k)
		}
	}
	for _, b := range r.buckets {
		slices.Sort(b)
	}
	var keys []string
	if err := n.cmd.doInto(ctx, &keys, "KEYS", "demo:*"); err != nil {
		return r, err
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		v, err := value(ctx, n.cmd, k)
		if err != nil {
			return r, err
		}
		r.demo[k] = v
		fmt.Fprintf(h, "%s\t%s\n", k, v)
	}
	r.digest = hex.EncodeToString(h.Sum(nil))[:12]
	return r, nil
}

// value reads a key with the command of its type and renders it
// canonically (sets sorted, hashes by field).
func value(ctx context.Context, cm *commander, key string) (string, error) {
	var typ string
	if err := cm.doInto(ctx, &typ, "TYPE", key); err != nil {
		return "", err
	}
	var args []string
	switch typ {
	case "string":
		args = []string{"GET", key}
	case "hash":
		args = []string{"HGETALL", key}
	case "set":
		args = []string{"SMEMBERS", key}
	case "list":
		args = []string{"LRANGE", key, "0", "-1"}
	default:
		return typ, nil
	}
	var v any
	if err := cm.doInto(ctx, &v, args...); err != nil {
		return "", err
	}
	if members, ok := v.([]any); ok && typ == "set" {
		slices.SortFunc(members, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	return typ + " " + string(b), nil
}

// divergence says why the replicas do not agree yet ("" when they do).
func (d *demo) divergence(s snapshot) string {
	hub := s.replicas[len(s.replicas)-1]
	for _, r := range s.replicas {
		if r.digest != hub.digest {
			return fmt.Sprintf("%s's demo keys (digest %s) differ from the hub's (%s)", r.name, r.digest, hub.digest)
		}
		want := fmt.Sprintf("string \"%d\"", d.visits)
		if got := r.demo["demo:visits"]; got != want {
			return fmt.Sprintf("demo:visits on %s is %s, want %d (every increment)", r.name, got, d.visits)
		}
	}
	for _, e := range s.replicas[:len(s.replicas)-1] {
		if e.pending > 0 {
			return fmt.Sprintf("%s has %d ops not yet acknowledged by the hub", e.name, e.pending)
		}
		have := hub.buckets[e.name]
		for _, k := range e.buckets[e.name] {
			if _, found := slices.BinarySearch(have, k); !found {
				return fmt.Sprintf("the hub lacks %s's bucket %s", e.name, k)
			}
		}
	}
	d.dataMu.Lock()
	defer d.dataMu.Unlock()
	for _, e := range s.replicas[:len(s.replicas)-1] {
		for _, k := range e.buckets[e.name] {
			if _, ok := d.dataKeys[k]; !ok {
				return fmt.Sprintf("the hub has not published %s's bucket %s for cloud subscribers yet", e.name, k)
			}
		}
	}
	return ""
}

// print writes one summary: a line per replica, then the hub's outputs.
func (d *demo) print(elapsed time.Duration, s snapshot) {
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "[%5.1fs]\tnode\tkeys\tsync\tpending\tbuckets\tdemo digest\tdemo:visits\n", elapsed.Seconds())
	for _, r := range s.replicas {
		st, pend, buckets := "-", "-", 0
		if r.sync != "" {
			st = r.sync
			if !r.link {
				st += " (hub down)"
			}
			pend = fmt.Sprint(r.pending)
			buckets = len(r.buckets[r.name])
		} else {
			for _, b := range r.buckets {
				buckets += len(b)
			}
		}
		fmt.Fprintf(tw, "\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", r.name, r.keys, st, pend, buckets, r.digest,
			strings.Trim(strings.TrimPrefix(r.demo["demo:visits"], "string "), `"`))
	}
	_ = tw.Flush()
	d.dataMu.Lock()
	var pub []string
	total := 0
	for _, e := range d.edges {
		pub = append(pub, fmt.Sprintf("%s %d", e.name, d.dataMsg[e.name]))
		total += d.dataMsg[e.name]
	}
	d.dataMu.Unlock()
	status := "converged"
	if why := d.divergence(s); why != "" {
		status = "converging: " + why
	}
	d.printf("          increments made: %d; conflicts at the hub: %d; bucket messages for cloud subscribers: %d (%s); %s\n\n",
		d.visits, s.conflicts, total, strings.Join(pub, ", "), status)
}

// verdict is the last word of a converged run.
func (d *demo) verdict(s snapshot, took time.Duration) {
	hub := s.replicas[len(s.replicas)-1]
	d.printf("CONVERGED in %s: %d replicas with demo digest %s\n", took.Round(100*time.Millisecond), len(s.replicas), hub.digest)
	keys := make([]string, 0, len(hub.demo))
	for k := range hub.demo {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d.printf("  %-14s %s\n", k, hub.demo[k])
	}
	d.printf("  demo:visits counts all %d increments of both edges (a CRDT counter: none is lost); demo:color kept one\n", d.visits)
	d.printf("  of the two concurrent SETs (the same on every replica; the loser is listed by EDGE.CONFLICTS: %d conflict(s));\n", s.conflicts)
	d.printf("  demo:tags and demo:settings merged both edges' writes.\n")
	for _, e := range s.replicas[:len(s.replicas)-1] {
		d.printf("  %s: %d sensor buckets, all at the hub and published there for cloud subscribers\n", e.name, len(e.buckets[e.name]))
	}
}
