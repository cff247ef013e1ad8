package resources

import (
	"slices"
	"testing"
)

func TestTrackerHysteresis(t *testing.T) {
	disk := Thresholds{Warning: 70, High: 85, Critical: 95}
	h := Hysteresis{Margin: 5, Samples: 3}
	N, W, H, C := Normal, Warning, High, Critical
	tests := []struct {
		name     string
		h        Hysteresis
		percents []float64
		want     []Level
	}{
		{"normal stays normal", h, []float64{0, 50, 69.9}, []Level{N, N, N}},
		{"enters at the threshold at once", h, []float64{70, 85, 95}, []Level{W, H, C}},
		{"jumps straight to critical", h, []float64{10, 99}, []Level{N, C}},
		{"within the margin holds the level", h, []float64{72, 68, 66, 65, 65, 65}, []Level{W, W, W, W, W, W}},
		{"leaves after k calm samples", h, []float64{72, 64, 64, 64}, []Level{W, W, W, N}},
		{"an interrupted calm run restarts", h, []float64{72, 64, 64, 66, 64, 64, 64}, []Level{W, W, W, W, W, W, N}},
		{"critical drops to the level the margin allows", h, []float64{96, 89, 89, 89}, []Level{C, C, C, H}},
		{"critical within high's margin stays high", h, []float64{96, 81, 81, 81}, []Level{C, C, C, H}},
		{"high drops straight to normal", h, []float64{86, 60, 60, 60}, []Level{H, H, H, N}},
		{"critical drops to warning", h, []float64{96, 70, 70, 70}, []Level{C, C, C, W}},
		{"a rise during calm resets it", h, []float64{86, 60, 60, 96, 60, 60, 60}, []Level{H, H, H, C, C, C, N}},
		{"k=1 leaves at once", Hysteresis{Margin: 5, Samples: 1}, []float64{72, 64}, []Level{W, N}},
		{"no margin", Hysteresis{Margin: 0, Samples: 1}, []float64{72, 69.9, 70}, []Level{W, N, W}},
		{"above 100 is critical", h, []float64{250}, []Level{C}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr tracker
			var got []Level
			for _, p := range tt.percents {
				tr.observe(p, disk, tt.h)
				got = append(got, tr.level)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("percents %v: levels %v, want %v", tt.percents, got, tt.want)
			}
		})
	}
}

func TestTrackerReportsTransitions(t *testing.T) {
	th := Thresholds{Warning: 80, High: 90, Critical: 95}
	var tr tracker
	if from, changed := tr.observe(91, th, Hysteresis{Margin: 5, Samples: 1}); !changed || from != Normal || tr.level != High {
		t.Fatalf("observe(91) = %v, %v, level %v; want normal, true, high", from, changed, tr.level)
	}
	if _, changed := tr.observe(90, th, Hysteresis{Margin: 5, Samples: 1}); changed {
		t.Fatal("observe(90) at high reported a change")
	}
}

func TestDebounce(t *testing.T) {
	var d debounce
	steps := []struct{ raw, recovered, want int }{
		{2, 2, 2}, // worse at once
		{0, 0, 2}, // better: calm 1
		{0, 1, 2}, // calm 2
		{0, 1, 1}, // calm 3: to the recovered state
		{1, 1, 1},
		{0, 1, 1}, // recovered state is not better: no calm
		{3, 3, 3},
		{0, 0, 3},
		{3, 3, 3}, // worse again resets calm
		{0, 0, 3},
		{0, 0, 3},
		{0, 0, 0},
	}
	for i, s := range steps {
		if got := d.observe(s.raw, s.recovered, 3); got != s.want {
			t.Fatalf("step %d observe(%d, %d) = %d, want %d", i, s.raw, s.recovered, got, s.want)
		}
	}
}

func TestLevelText(t *testing.T) {
	for l := Normal; l <= Critical; l++ {
		b, _ := l.MarshalText()
		var back Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Fatalf("round trip %v: %v, %v", l, back, err)
		}
	}
	var l Level
	if err := l.UnmarshalText([]byte("panic")); err == nil {
		t.Fatal("unknown level accepted")
	}
	if s := Level(9).String(); s != "level(9)" {
		t.Fatalf("Level(9) = %q", s)
	}
}
