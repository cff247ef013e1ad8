//go:build race

package store

// raceEnabled: the race detector multiplies memory use and slows writes
// ~10x, so the memory test does not run under it.
const raceEnabled = true
