package worker

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// loadavgPath is where Linux publishes the load averages.
const loadavgPath = "/proc/loadavg"

// SystemLoad returns the 1, 5 and 15 minute load averages of the system from
// /proc/loadavg.
func SystemLoad() ([3]float64, error) {
	b, err := os.ReadFile(loadavgPath)
	if err != nil {
		return [3]float64{}, fmt.Errorf("read load: %w", err)
	}
	return parseLoadavg(string(b))
}

// parseLoadavg reads the first three fields of /proc/loadavg
// ("0.52 0.58 0.59 1/389 12345").
func parseLoadavg(s string) ([3]float64, error) {
	var v [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return v, fmt.Errorf("parse load %q: want three load averages", s)
	}
	for i := range v {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !(x >= 0) || math.IsInf(x, 1) {
			return v, fmt.Errorf("parse load %q: field %d is not a load average", s, i+1)
		}
		v[i] = x
	}
	return v, nil
}

// overLimit reports whether any load average is above its limit; a limit of
// 0 is off.
func (c Config) overLimit(load [3]float64) bool {
	for i, lim := range [3]float64{c.LoadLimit1, c.LoadLimit5, c.LoadLimit15} {
		if lim > 0 && load[i] > lim {
			return true
		}
	}
	return false
}
