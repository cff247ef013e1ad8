package resources

import (
	"testing"
	"time"
)

func TestSyncIntervalFormula(t *testing.T) {
	c := DefaultConfig()
	base := 30 * time.Second
	tests := []struct {
		q    LinkQuality
		b    BatteryState
		want time.Duration
	}{
		{LinkUnknown, BatteryPowered, 30 * time.Second},
		{LinkGood, BatteryPowered, 30 * time.Second},
		{LinkDegraded, BatteryPowered, time.Minute},
		{LinkPoor, BatteryPowered, 2 * time.Minute},
		{LinkDown, BatteryPowered, 2 * time.Minute},
		{LinkGood, BatteryDischarging, time.Minute},
		{LinkGood, BatteryLow, 2 * time.Minute},
		{LinkGood, BatteryCritical, 4 * time.Minute},
		{LinkDegraded, BatteryLow, 4 * time.Minute},
		{LinkPoor, BatteryCritical, 15 * time.Minute}, // 16m capped by max_sync_interval
	}
	for _, tt := range tests {
		if got := SyncInterval(base, c.MaxSyncInterval, tt.q, tt.b, c); got != tt.want {
			t.Errorf("link %v battery %v: %v, want %v", tt.q, tt.b, got, tt.want)
		}
	}
	if got := SyncInterval(0, c.MaxSyncInterval, LinkPoor, BatteryLow, c); got != 0 {
		t.Errorf("unmanaged base: %v, want 0", got)
	}
	if got := SyncInterval(time.Hour, c.MaxSyncInterval, LinkPoor, BatteryPowered, c); got != time.Hour {
		t.Errorf("base above max: %v, want the base", got)
	}
}

func TestClassifyLink(t *testing.T) {
	c := DefaultConfig().Link
	tests := []struct {
		s    LinkSample
		want LinkQuality
	}{
		{LinkSample{}, LinkUnknown},
		{LinkSample{Known: true}, LinkDown},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true, RTT: 40 * time.Millisecond}}, LinkGood},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true}}, LinkGood},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true, RTT: 600 * time.Millisecond}}, LinkDegraded},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true, ConsecutiveFailures: 1}}, LinkDegraded},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true, RTT: 3 * time.Second}}, LinkPoor},
		{LinkSample{Known: true, LinkStats: LinkStats{Connected: true, ConsecutiveFailures: 3}}, LinkPoor},
	}
	for _, tt := range tests {
		if got := classifyLink(tt.s, c); got != tt.want {
			t.Errorf("%+v: %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestClassifyBattery(t *testing.T) {
	c := DefaultConfig().Battery
	tests := []struct {
		b    BatterySample
		bias float64
		want BatteryState
	}{
		{BatterySample{}, 0, BatteryPowered},
		{BatterySample{Present: true, Percent: 5, Charging: true, ExternalPower: true}, 0, BatteryPowered},
		{BatterySample{Present: true, Percent: 5, ExternalPower: true}, 0, BatteryPowered},
		{BatterySample{Present: true, Percent: 80}, 0, BatteryDischarging},
		{BatterySample{Present: true, Percent: 29}, 0, BatteryLow},
		{BatterySample{Present: true, Percent: 32}, 5, BatteryLow},
		{BatterySample{Present: true, Percent: 9}, 0, BatteryCritical},
		{BatterySample{Present: true, Percent: 12}, 5, BatteryCritical},
	}
	for _, tt := range tests {
		if got := classifyBattery(tt.b, c, tt.bias); got != tt.want {
			t.Errorf("%+v bias %v: %v, want %v", tt.b, tt.bias, got, tt.want)
		}
	}
	c.Disabled = true
	if got := classifyBattery(BatterySample{Present: true, Percent: 1}, c, 0); got != BatteryPowered {
		t.Errorf("disabled battery: %v", got)
	}
}

// TestPolicySyncIntervalFollowsLinkAndBattery drives the policy with an
// injected link and battery: worse conditions slow sync at once, recovery
// restores the base interval after hysteresis.samples calm rounds.
func TestPolicySyncIntervalFollowsLinkAndBattery(t *testing.T) {
	base := 30 * time.Second
	p := NewPolicy(testConfig(), base) // 3 calm samples, margin 5
	good := LinkSample{Known: true, LinkStats: LinkStats{Connected: true, RTT: 20 * time.Millisecond}}
	slow := LinkSample{Known: true, LinkStats: LinkStats{Connected: true, RTT: 900 * time.Millisecond}}
	down := LinkSample{Known: true}
	mains := BatterySample{Present: true, Percent: 90, ExternalPower: true}
	batt := func(pct float64) BatterySample {
		return BatterySample{Present: true, Percent: pct, Status: "Discharging"}
	}
	steps := []struct {
		name     string
		link     LinkSample
		battery  BatterySample
		want     time.Duration // interval in force
		emitted  bool          // a set_sync_interval action this round
		linkQ    LinkQuality
		batteryS BatteryState
	}{
		{"start: base", good, mains, base, true, LinkGood, BatteryPowered},
		{"degraded link: x2 at once", slow, mains, time.Minute, true, LinkDegraded, BatteryPowered},
		{"link down: x4", down, mains, 2 * time.Minute, true, LinkDown, BatteryPowered},
		{"link back: calm 1", good, mains, 2 * time.Minute, false, LinkDown, BatteryPowered},
		{"calm 2", good, mains, 2 * time.Minute, false, LinkDown, BatteryPowered},
		{"calm 3: base", good, mains, base, true, LinkGood, BatteryPowered},
		{"unplugged: x2", good, batt(80), time.Minute, true, LinkGood, BatteryDischarging},
		{"low battery: x4", good, batt(29), 2 * time.Minute, true, LinkGood, BatteryLow},
		{"critical battery and poor link: capped", down, batt(9), 15 * time.Minute, true, LinkDown, BatteryCritical},
		{"31 % is within the margin of low", good, batt(31), 15 * time.Minute, false, LinkDown, BatteryCritical},
		{"calm 2", good, batt(31), 15 * time.Minute, false, LinkDown, BatteryCritical},
		{"calm 3: link good, battery only back to low", good, batt(31), 2 * time.Minute, true, LinkGood, BatteryLow},
		{"plugged in: calm 1", good, mains, 2 * time.Minute, false, LinkGood, BatteryLow},
		{"calm 2", good, mains, 2 * time.Minute, false, LinkGood, BatteryLow},
		{"calm 3: base", good, mains, base, true, LinkGood, BatteryPowered},
	}
	for i, st := range steps {
		s := round(time.Duration(i)*time.Second, 10, 10)
		s.Link, s.Battery = st.link, st.battery
		d := p.Evaluate(s)
		emitted := false
		for _, a := range d.Actions {
			if a.Kind == ActSetSyncInterval {
				emitted = true
				if a.Interval != st.want {
					t.Fatalf("%s: set_sync_interval(%v), want %v", st.name, a.Interval, st.want)
				}
			}
		}
		if d.SyncInterval != st.want || emitted != st.emitted || d.Link != st.linkQ || d.Battery != st.batteryS {
			t.Fatalf("%s: interval %v emitted %v link %v battery %v; want %v %v %v %v", st.name,
				d.SyncInterval, emitted, d.Link, d.Battery, st.want, st.emitted, st.linkQ, st.batteryS)
		}
		if emitted && !d.Changed {
			t.Fatalf("%s: interval change not marked changed", st.name)
		}
	}
}
