package resources

import "context"

// Command is a transport-neutral command spec, the same shape every package
// exports; the root package registers it with the broker's router.
type Command struct {
	Name     string
	MinArgs  int
	MaxArgs  int // -1: no maximum
	ReadOnly bool
	Help     string
	Run      func(ctx context.Context, args []string) (any, error)
}

// Commands returns the monitor's commands: EDGE.RESOURCES, which replies
// with the Snapshot of the last round (ErrNoSample before the first).
func Commands(m *Monitor) []Command {
	return []Command{{
		Name:     "EDGE.RESOURCES",
		MinArgs:  0,
		MaxArgs:  0,
		ReadOnly: true,
		Help: "EDGE.RESOURCES — resource usage: memory, disk and cpu (used, limit, percent, level), " +
			"battery, link quality, the actions in force, the sync interval and the sampling cost",
		Run: func(ctx context.Context, args []string) (any, error) {
			s := m.Snapshot()
			if s.Time.IsZero() {
				return nil, ErrNoSample
			}
			return s, nil
		},
	}}
}
