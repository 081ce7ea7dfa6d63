package neb

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RuntimeArgs are gearbridge's own broker-line arguments that tune the Go
// runtime inside the core (neb-abi.md §2.5 item 9). They are not classic
// options, so they are taken off the line before it is parsed.
type RuntimeArgs struct {
	GOMAXPROCS int    // gomaxprocs=N; 0 = Go's default (the CPUs)
	GOGC       int    // gogc=N; 0 = unset; -1 = off
	MemLimit   int64  // gomemlimit=BYTES (suffixes KiB, MiB, GiB); 0 = unset
	Raw        string // the arguments as given, for the log
}

// SplitRuntimeArgs removes gomaxprocs=, gogc= and gomemlimit= from a broker
// line and returns the rest unchanged.
func SplitRuntimeArgs(args string) (rest string, rt RuntimeArgs, err error) {
	var keep, raw []string
	for _, a := range strings.Split(args, " ") {
		k, v, _ := strings.Cut(a, "=")
		switch strings.ToLower(strings.TrimLeft(k, "-")) {
		case "gomaxprocs":
			rt.GOMAXPROCS, err = strconv.Atoi(v)
			if err != nil || rt.GOMAXPROCS < 1 {
				return "", rt, fmt.Errorf("broker line: gomaxprocs=%q: want a positive integer", v)
			}
		case "gogc":
			if strings.EqualFold(v, "off") {
				rt.GOGC = -1
			} else if rt.GOGC, err = strconv.Atoi(v); err != nil || rt.GOGC < 1 {
				return "", rt, fmt.Errorf("broker line: gogc=%q: want a positive integer or off", v)
			}
		case "gomemlimit":
			rt.MemLimit, err = parseBytes(v)
			if err != nil {
				return "", rt, fmt.Errorf("broker line: gomemlimit=%q: %w", v, err)
			}
		default:
			keep = append(keep, a)
			continue
		}
		raw = append(raw, a)
	}
	rt.Raw = strings.Join(raw, " ")
	return strings.Join(keep, " "), rt, nil
}

func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(v, s.suffix) {
			v, mult = strings.TrimSuffix(v, s.suffix), s.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a positive size such as 256MiB")
	}
	return n * mult, nil
}
