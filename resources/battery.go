package resources

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultPowerSupplyPath is where Linux lists batteries and power adapters.
const DefaultPowerSupplyPath = "/sys/class/power_supply"

// powerSupply reads batteries and adapters from a power_supply class
// directory (injectable so tests use a fake sysfs tree).
//
// Each entry has a "type" file. "Battery" entries (with "scope" not
// "Device": a wireless mouse's battery is not ours, and "present" not 0)
// give "capacity" (percent) and "status" (Charging, Discharging, Full,
// Not charging, Unknown); several batteries are combined by energy_now /
// energy_full (or charge_now / charge_full) when every one reports them,
// else by the mean capacity. Any other type (Mains, USB, USB_C, ...) with
// "online" 1 means external power. "Full" and "Not charging" also mean
// external power (a charge threshold holds the battery while plugged in).
type powerSupply struct {
	root string
	buf  []byte

	// The entries and their kinds are listed once and again every
	// rescanEvery rounds (and after a read error), so a round reads only
	// the changing attributes: hot-plugging a battery is rare.
	batteries []string // entry directories
	adapters  []string
	rounds    int
}

const rescanEvery = 60

func newPowerSupply(root string) *powerSupply {
	return &powerSupply{root: root, buf: make([]byte, 256)}
}

// scan lists the batteries and adapters; a missing directory is none.
func (p *powerSupply) scan() error {
	p.batteries, p.adapters = p.batteries[:0], p.adapters[:0]
	entries, err := os.ReadDir(p.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resources: power supply: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(p.root, e.Name())
		switch p.str(dir, "type") {
		case "":
		case "Battery":
			if p.str(dir, "scope") != "Device" && p.str(dir, "present") != "0" {
				p.batteries = append(p.batteries, dir)
			}
		default:
			p.adapters = append(p.adapters, dir)
		}
	}
	return nil
}

// read returns the battery sample.
func (p *powerSupply) read() BatterySample {
	if p.rounds%rescanEvery == 0 {
		if err := p.scan(); err != nil {
			return BatterySample{Err: err}
		}
	}
	p.rounds++
	b, stale := p.sample()
	if stale {
		p.rounds = 0 // an entry vanished or changed: rescan next round
	}
	return b
}

func (p *powerSupply) sample() (b BatterySample, stale bool) {
	var capSum, n, nowSum, fullSum float64
	haveEnergy := len(p.batteries) > 1 // one battery: its capacity is enough
	charging, powered := false, false
	for _, dir := range p.batteries {
		c, ok := p.num(dir, "capacity")
		if !ok {
			stale = true
			continue
		}
		status := p.str(dir, "status")
		if !b.Present {
			b.Status = status
		}
		b.Present = true
		capSum += min(max(c, 0), 100)
		n++
		if haveEnergy {
			now, okNow := p.energy(dir, "now")
			full, okFull := p.energy(dir, "full")
			nowSum, fullSum = nowSum+now, fullSum+full
			haveEnergy = okNow && okFull && full > 0
		}
		switch status {
		case "Charging":
			charging = true
		case "Full", "Not charging":
			powered = true
		}
	}
	for _, dir := range p.adapters {
		if p.str(dir, "online") == "1" {
			powered = true
		}
	}
	if b.Present {
		b.Percent = capSum / n
		if haveEnergy && fullSum > 0 {
			b.Percent = min(100, 100*nowSum/fullSum)
		}
	}
	b.Charging, b.ExternalPower = charging, powered || charging
	return b, stale
}

// energy reads energy_<what> (µWh) or, failing that, charge_<what> (µAh).
func (p *powerSupply) energy(dir, what string) (float64, bool) {
	if v, ok := p.num(dir, "energy_"+what); ok {
		return v, true
	}
	return p.num(dir, "charge_"+what)
}

// str reads a one-line attribute, "" when absent or unreadable.
func (p *powerSupply) str(dir, name string) string {
	data, err := readSmall(filepath.Join(dir, name), p.buf)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(data))
}

// num reads a non-negative numeric attribute.
func (p *powerSupply) num(dir, name string) (float64, bool) {
	data, err := readSmall(filepath.Join(dir, name), p.buf)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 63)
	if err != nil {
		return 0, false
	}
	return float64(v), true
}
