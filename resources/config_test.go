package resources

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Thresholds.Memory != (Thresholds{80, 90, 95}) || c.Thresholds.Disk != (Thresholds{70, 85, 95}) {
		t.Fatalf("thresholds %+v: not the feature document's", c.Thresholds)
	}
}

func TestConfigFromYAML(t *testing.T) {
	const doc = `
memory_limit: 128mb
storage_limit: 5mb
cpu_budget: low
sample_interval: 250ms
hysteresis:
  margin: 3
  samples: 2
thresholds:
  disk:
    warning: 60
battery:
  low: 40
link:
  rtt_poor: 5s
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.MemoryLimit, want.StorageLimit, want.CPUBudget = 128<<20, 5<<20, CPULow
	want.SampleInterval = 250 * time.Millisecond
	want.Hysteresis = Hysteresis{Margin: 3, Samples: 2}
	want.Thresholds.Disk.Warning = 60
	want.Battery.Low = 40
	want.Link.RTTPoor = 5 * time.Second
	if c != want {
		t.Fatalf("decoded\n%+v\nwant\n%+v", c, want)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil || back != c {
		t.Fatalf("round trip through\n%s\ngave %+v, %v", out, back, err)
	}
}

func TestConfigYAMLErrors(t *testing.T) {
	for _, doc := range []string{
		"storage_limit: 5 parsecs",
		"storage_limit: [1]",
		"memory_limit: -5mb",
		"sample_interval: soon",
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(doc), &c); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.MemoryLimit = 1 << 20
	c.CPUBudget = "turbo"
	c.SampleInterval = time.Microsecond
	c.Hysteresis.Samples = 0
	c.Thresholds.Disk = Thresholds{Warning: 90, High: 85, Critical: 95}
	c.Thresholds.Memory.Critical = 120
	c.Battery.Critical = 50
	c.Link.PoorFactor = 0.5
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v does not wrap ErrInvalidConfig", err)
	}
	for _, field := range []string{"memory_limit", "cpu_budget", "sample_interval", "hysteresis.samples",
		"thresholds.disk", "thresholds.memory", "battery", "link.poor_factor"} {
		if !strings.Contains(err.Error(), "resources."+field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 8 {
		t.Errorf("%d problems reported, want 8:\n%v", n, err)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want Bytes
	}{
		{"0", 0}, {"1024", 1024}, {"5mb", 5 << 20}, {"5MB", 5 << 20}, {" 5 mb ", 5 << 20},
		{"1k", 1024}, {"1kb", 1024}, {"1KiB", 1024}, {"1.5kb", 1536}, {"2g", 2 << 30}, {"1gb", 1 << 30},
		{"1tb", 1 << 40}, {"7b", 7},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "mb", "-1", "5 parsecs", "1.2.3mb", "99999999999tb", "9223372036854775808", "NaN", "Inf", "0x10"} {
		if got, err := ParseBytes(bad); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseBytes(%q) = %d, %v; want ErrBadSize", bad, got, err)
		}
	}
}

func TestBytesString(t *testing.T) {
	for _, tt := range []struct {
		b    Bytes
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 40, "3.0 TiB"}} {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", int64(tt.b), got, tt.want)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"5mb", "1.5kb", "0", "1e3", "..", "9223372036854775807", "18446744073709551616gb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBytes(s)
		if err != nil {
			if !errors.Is(err, ErrBadSize) {
				t.Fatalf("ParseBytes(%q): error %v does not wrap ErrBadSize", s, err)
			}
			return
		}
		if b < 0 {
			t.Fatalf("ParseBytes(%q) = %d: negative", s, b)
		}
		// The plain number of bytes reads back exactly.
		if back, err := ParseBytes(strconv.FormatInt(int64(b), 10)); err != nil || back != b {
			t.Fatalf("ParseBytes(%q) = %d; reading %d back gave %d, %v", s, b, b, back, err)
		}
	})
}

func TestCPUBudget(t *testing.T) {
	tests := []struct {
		b          CPUBudget
		base, want int
		batch      int
	}{
		{CPULow, 1, 1, 64}, {CPULow, 2, 1, 64}, {CPULow, 8, 2, 64}, {CPULow, 6, 2, 64},
		{CPUMedium, 2, 1, 256}, {CPUMedium, 8, 4, 256}, {CPUMedium, 3, 2, 256},
		{CPUHigh, 8, 8, 1024}, {"", 4, 4, 1024}, {"HIGH", 4, 4, 1024},
	}
	for _, tt := range tests {
		if got := tt.b.Procs(tt.base); got != tt.want {
			t.Errorf("%q.Procs(%d) = %d, want %d", tt.b, tt.base, got, tt.want)
		}
		if got := tt.b.BatchSize(); got != tt.batch {
			t.Errorf("%q.BatchSize() = %d, want %d", tt.b, got, tt.batch)
		}
	}
}

// A YAML disk_reserve or hysteresis margin of 0 means none; it used to be
// replaced by the default when the monitor started (found by the config
// audit). Unset fields of a Go caller's Config still take the defaults.
func TestExplicitZeros(t *testing.T) {
	c := DefaultConfig()
	c.DiskReserve, c.Hysteresis.Margin = 0, 0
	c.ExplicitZeros()
	c.SetDefaults()
	if c.DiskReserve != 0 || c.Hysteresis.Margin != 0 {
		t.Fatalf("explicit zeros became reserve %v, margin %v", c.DiskReserve, c.Hysteresis.Margin)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var d Config
	d.SetDefaults()
	if d.DiskReserve != 16<<20 || d.Hysteresis.Margin != 5 {
		t.Fatalf("defaults: reserve %v, margin %v", d.DiskReserve, d.Hysteresis.Margin)
	}
}
