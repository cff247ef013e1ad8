package resources

import (
	"fmt"
	"math"
	"time"
)

// LinkQuality classifies the link to the hub for sync pacing.
type LinkQuality uint8

const (
	LinkUnknown  LinkQuality = iota // no link figures (no syncer wired): pace as good
	LinkGood                        // connected, RTT below rtt_degraded, no failure
	LinkDegraded                    // RTT >= rtt_degraded, or a failed round
	LinkPoor                        // RTT >= rtt_poor, or failures_poor failed rounds
	LinkDown                        // disconnected: paced as poor
)

var linkNames = [...]string{"unknown", "good", "degraded", "poor", "down"}

func (q LinkQuality) String() string {
	if int(q) < len(linkNames) {
		return linkNames[q]
	}
	return fmt.Sprintf("link(%d)", uint8(q))
}

// MarshalText writes the quality's name.
func (q LinkQuality) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText reads a quality's name.
func (q *LinkQuality) UnmarshalText(b []byte) error {
	return unmarshalName(q, linkNames[:], "link quality", b)
}

// classifyLink returns the quality a sample shows.
func classifyLink(s LinkSample, c LinkConfig) LinkQuality {
	switch {
	case !s.Known:
		return LinkUnknown
	case !s.Connected:
		return LinkDown
	case s.RTT >= c.RTTPoor || s.ConsecutiveFailures >= c.FailuresPoor:
		return LinkPoor
	case s.RTT >= c.RTTDegraded || s.ConsecutiveFailures > 0:
		return LinkDegraded
	}
	return LinkGood
}

// linkFactor is the sync interval multiplier of a link quality.
func linkFactor(q LinkQuality, c LinkConfig) float64 {
	switch q {
	case LinkDegraded:
		return c.DegradedFactor
	case LinkPoor, LinkDown:
		return c.PoorFactor
	}
	return 1
}

// BatteryState classifies the power supply for sync pacing.
type BatteryState uint8

const (
	BatteryPowered     BatteryState = iota // no battery, on external power, or charging
	BatteryDischarging                     // on battery, at or above low
	BatteryLow                             // on battery, below low
	BatteryCritical                        // on battery, below critical
)

var batteryNames = [...]string{"powered", "discharging", "low", "critical"}

func (s BatteryState) String() string {
	if int(s) < len(batteryNames) {
		return batteryNames[s]
	}
	return fmt.Sprintf("battery(%d)", uint8(s))
}

// MarshalText writes the state's name.
func (s BatteryState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *BatteryState) UnmarshalText(b []byte) error {
	return unmarshalName(s, batteryNames[:], "battery state", b)
}

// classifyBattery returns the state a sample shows when its level is taken
// bias points lower than measured (the recovery margin is a negative bias:
// a battery at 32 % counts as 27 % when deciding whether it left "low").
func classifyBattery(b BatterySample, c BatteryConfig, bias float64) BatteryState {
	if c.Disabled || b.Err != nil || !b.Discharging() {
		return BatteryPowered
	}
	switch p := b.Percent - bias; {
	case p < c.Critical:
		return BatteryCritical
	case p < c.Low:
		return BatteryLow
	}
	return BatteryDischarging
}

// batteryFactor is the sync interval multiplier of a battery state.
func batteryFactor(s BatteryState, c BatteryConfig) float64 {
	switch s {
	case BatteryDischarging:
		return c.DischargingFactor
	case BatteryLow:
		return c.LowFactor
	case BatteryCritical:
		return c.CriticalFactor
	}
	return 1
}

// SyncInterval is the pacing formula:
//
//	interval = min(base × link factor × battery factor, max(maxInterval, base))
//
// so a good link on external power syncs at base, and the worst case is
// capped. A base of 0 (sync pacing not managed) returns 0.
func SyncInterval(base, maxInterval time.Duration, q LinkQuality, s BatteryState, c Config) time.Duration {
	if base <= 0 {
		return 0
	}
	f := linkFactor(q, c.Link) * batteryFactor(s, c.Battery)
	capped := max(maxInterval, base)
	d := float64(base) * f
	if d >= float64(capped) || math.IsNaN(d) {
		return capped
	}
	return time.Duration(d)
}
