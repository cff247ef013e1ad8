package resources

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeSupply writes a power_supply class directory: entry name -> attribute
// -> value. Entries are symlinks to device directories, as in sysfs.
func fakeSupply(t testing.TB, entries map[string]map[string]string) string {
	t.Helper()
	root, devices := t.TempDir(), t.TempDir()
	for name, attrs := range entries {
		dev := filepath.Join(devices, name)
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		for attr, v := range attrs {
			if err := os.WriteFile(filepath.Join(dev, attr), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(dev, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPowerSupply(t *testing.T) {
	ac := func(online string) map[string]string { return map[string]string{"type": "Mains", "online": online} }
	bat := func(capacity, status string) map[string]string {
		return map[string]string{"type": "Battery", "present": "1", "capacity": capacity, "status": status}
	}
	tests := []struct {
		name    string
		entries map[string]map[string]string
		want    BatterySample
		state   BatteryState
	}{
		{"no supplies", nil, BatterySample{}, BatteryPowered},
		{"mains only", map[string]map[string]string{"AC": ac("1")}, BatterySample{ExternalPower: true}, BatteryPowered},
		{"discharging", map[string]map[string]string{"AC": ac("0"), "BAT0": bat("45", "Discharging")},
			BatterySample{Present: true, Percent: 45, Status: "Discharging"}, BatteryDischarging},
		{"low", map[string]map[string]string{"BAT0": bat("12", "Discharging")},
			BatterySample{Present: true, Percent: 12, Status: "Discharging"}, BatteryLow},
		{"charging", map[string]map[string]string{"AC": ac("1"), "BAT0": bat("5", "Charging")},
			BatterySample{Present: true, Percent: 5, Status: "Charging", Charging: true, ExternalPower: true}, BatteryPowered},
		{"not charging means plugged in", map[string]map[string]string{"BAT0": bat("80", "Not charging")},
			BatterySample{Present: true, Percent: 80, Status: "Not charging", ExternalPower: true}, BatteryPowered},
		{"usb power", map[string]map[string]string{"usb": {"type": "USB", "online": "1"}, "BAT0": bat("50", "Unknown")},
			BatterySample{Present: true, Percent: 50, Status: "Unknown", ExternalPower: true}, BatteryPowered},
		{"two batteries combined by energy", map[string]map[string]string{
			"BAT0": {"type": "Battery", "capacity": "50", "status": "Discharging", "energy_now": "10000000", "energy_full": "20000000"},
			"BAT1": {"type": "Battery", "capacity": "37", "status": "Discharging", "charge_now": "30000000", "charge_full": "80000000"},
		}, BatterySample{Present: true, Percent: 40, Status: "Discharging"}, BatteryDischarging},
		{"two batteries without energy: mean capacity", map[string]map[string]string{
			"BAT0": bat("50", "Discharging"), "BAT1": bat("30", "Discharging"),
		}, BatterySample{Present: true, Percent: 40, Status: "Discharging"}, BatteryDischarging},
		{"a mouse battery is not ours", map[string]map[string]string{
			"hidpp_battery_0": {"type": "Battery", "scope": "Device", "capacity": "3", "status": "Discharging"},
		}, BatterySample{}, BatteryPowered},
		{"absent battery slot", map[string]map[string]string{"BAT1": {"type": "Battery", "present": "0", "capacity": "0"}},
			BatterySample{}, BatteryPowered},
		{"garbage capacity is skipped", map[string]map[string]string{"BAT0": bat("lots", "Discharging"), "junk": {"nothing": "here"}},
			BatterySample{}, BatteryPowered},
	}
	cfg := DefaultConfig().Battery
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newPowerSupply(fakeSupply(t, tt.entries)).read()
			if got.Err != nil {
				t.Fatal(got.Err)
			}
			if got != tt.want {
				t.Fatalf("read() = %+v\nwant     %+v", got, tt.want)
			}
			if s := classifyBattery(got, cfg, 0); s != tt.state {
				t.Fatalf("state %v, want %v", s, tt.state)
			}
		})
	}
}

func TestPowerSupplyMissingDir(t *testing.T) {
	if got := newPowerSupply(filepath.Join(t.TempDir(), "absent")).read(); got != (BatterySample{}) {
		t.Fatalf("missing directory: %+v, want no battery and no error", got)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newPowerSupply(f).read(); got.Err == nil {
		t.Fatal("a file as the power supply directory gave no error")
	}
}
