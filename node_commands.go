package ferrite

import (
	"context"

	"github.com/ferrite-edge/ferrite/broker"
)

// register adds one command to the router. The store, ingest, syncer and
// resources packages describe their commands transport-neutrally (name,
// arity, help, func(ctx, args)); this is the one place that binds them to
// MQTT.
func (n *Node) register(name string, minArgs, maxArgs int, readOnly bool, help string,
	run func(ctx context.Context, args []string) (any, error)) error {
	return n.Router().Register(broker.Command{
		Name: name, MinArgs: minArgs, MaxArgs: maxArgs, ReadOnly: readOnly, Help: help,
		Func: func(ctx context.Context, req *broker.Request) (any, error) { return run(ctx, req.Args) },
	})
}
