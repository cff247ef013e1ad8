package ferrite_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ferrite-edge/ferrite"
	"github.com/ferrite-edge/ferrite/syncer"
)

// The feature document's "Programmatic Usage", in Go: an embedded node
// works fully offline and syncs when a hub is reachable.
func Example() {
	dir, _ := os.MkdirTemp("", "ferrite-example")
	defer os.RemoveAll(dir)

	cfg := ferrite.DefaultConfig()
	cfg.NodeID = "edge-001"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Broker.Listen = "127.0.0.1:0" // the embedded MQTT broker
	cfg.Broker.WebSocket = ""
	cfg.HTTP.Listen = ""
	cfg.Edge.Preset = "iot" // 2 MB, 1,000 keys, LZ4 level 9
	if err := cfg.Resolve(); err != nil {
		panic(err)
	}
	node, err := ferrite.NewNode(cfg, ferrite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Close(ctx)

	// Works fully offline.
	if err := node.Set(ctx, "sensor:temp", "22.5"); err != nil {
		panic(err)
	}
	temp, ok, _ := node.Get(ctx, "sensor:temp")
	fmt.Println(temp, ok)
	revenue, _ := node.HIncrBy(ctx, "store:42:daily_revenue", "2025-02-19", 4999)
	fmt.Println(revenue)

	// Syncs when connectivity is available: here no hub is configured, so
	// the changes stay in the offline queue.
	err = node.Sync(ctx)
	fmt.Println(errors.Is(err, syncer.ErrNoHub))
	// Output:
	// 22.5 true
	// 4999
	// true
}
