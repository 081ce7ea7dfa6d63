package bridgebench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would
// need cgo).
const clockTicks = 100

// cpuTimes is what /proc/PID/stat says a process has used so far.
type cpuTimes struct {
	self     time.Duration // utime + stime
	children time.Duration // cutime + cstime: reaped children (plugins)
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{self: c.self - o.self, children: c.children - o.children}
}

// readCPU reads the CPU times of pid.
func readCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(b)
}

// parseStat parses a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStat(b []byte) (cpuTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("proc stat %q: no command name", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime, stime, cutime and cstime are fields
	// 14 to 17.
	const first = 14 - 3
	if len(f) < first+4 {
		return cpuTimes{}, fmt.Errorf("proc stat: %d fields after the command name, want at least %d", len(f), first+4)
	}
	var t [4]int64
	for k := range t {
		v, err := strconv.ParseInt(string(f[first+k]), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("proc stat field %d: %w", 14+k, err)
		}
		t[k] = v
	}
	tick := time.Second / clockTicks
	return cpuTimes{self: time.Duration(t[0]+t[1]) * tick, children: time.Duration(t[2]+t[3]) * tick}, nil
}
