package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ferrite-edge/ferrite/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "ferrite-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	opts := store.Options{NodeID: "edge-001", Dir: dir} // durability "always"
	full, _ := store.LookupPreset("full")
	opts.ApplyPreset(full)
	s, err := store.Open(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// Works fully offline.
	if _, err := s.SetWith(ctx, "sensor:temp:001", []byte("23.5"), store.SetOptions{TTL: 24 * time.Hour}); err != nil {
		log.Fatal(err)
	}
	temp, _ := s.Get(ctx, "sensor:temp:001")
	ttl, _ := s.TTL(ctx, "sensor:temp:001")
	revenue, _ := s.HIncrBy(ctx, "store:42:daily_revenue", "2025-02-19", 4999)
	n, _ := s.LPush(ctx, "store:42:transactions", []byte(`{"id":"tx-001","amount":49.99}`))
	keys, _ := s.DBSize(ctx)

	fmt.Println(string(temp), ttl.Round(time.Minute), revenue, n, keys)
	// The op log holds one durable op per write, for the syncer.
	fmt.Println(s.LastSeq(), s.DurableSeq())
	// Output:
	// 23.5 24h0m0s 4999 1 3
	// 3 3
}

func ExampleCommands() {
	dir, _ := os.MkdirTemp("", "ferrite-store-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{NodeID: "edge-001", Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	cmds := map[string]store.Command{}
	for _, c := range store.Commands() {
		cmds[c.Name] = c
	}
	for _, line := range [][]string{
		{"SET", "sensor:temp:001", "23.5", "EX", "86400"},
		{"LPUSH", "sensor:log:001", `{"temp":23.5,"ts":1708300000}`},
		{"HINCRBY", "store:42:daily_revenue", "2025-02-19", "4999"},
		{"GET", "store:42:daily_revenue"},
	} {
		res, err := cmds[line[0]].Run(ctx, s, line[1:])
		fmt.Printf("%v %v\n", res, err)
	}
	// Output:
	// OK <nil>
	// 1 <nil>
	// 4999 <nil>
	// <nil> WRONGTYPE Operation against a key holding the wrong kind of value
}
