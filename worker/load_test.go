package worker

import (
	"math"
	"testing"
)

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		in   string
		want [3]float64
		ok   bool
	}{
		{"0.52 0.58 0.59 1/389 12345\n", [3]float64{0.52, 0.58, 0.59}, true},
		{"12.00 8.5 3", [3]float64{12, 8.5, 3}, true},
		{"", [3]float64{}, false},
		{"1 2", [3]float64{}, false},
		{"1 x 3", [3]float64{}, false},
		{"1 -2 3", [3]float64{}, false},
	}
	for _, tt := range tests {
		got, err := parseLoadavg(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseLoadavg(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSystemLoad(t *testing.T) {
	if _, err := SystemLoad(); err != nil {
		t.Skipf("no /proc/loadavg here: %v", err)
	}
}

func TestOverLimit(t *testing.T) {
	cfg := Config{LoadLimit5: 4}
	if cfg.overLimit([3]float64{100, 3, 100}) {
		t.Error("only load5 is limited; 3 <= 4")
	}
	if !cfg.overLimit([3]float64{0, 4.5, 0}) {
		t.Error("load5 4.5 > 4")
	}
	if (Config{}).overLimit([3]float64{100, 100, 100}) {
		t.Error("limits of 0 are off")
	}
}

func FuzzParseLoadavg(f *testing.F) {
	f.Add("0.52 0.58 0.59 1/389 12345\n")
	f.Add("1e3 NaN Inf")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseLoadavg(s)
		if err != nil {
			return
		}
		for _, x := range v {
			if !(x >= 0) || math.IsInf(x, 1) {
				t.Fatalf("parseLoadavg(%q) accepted %v", s, x)
			}
		}
	})
}
