package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"encoding/json"
	"slices"
)

// statsReport is what gearbridge_stats returns, for tests and benchmarks.
type statsReport struct {
	Core          string `json:"core"`
	Inits         int    `json:"inits"`
	InFlight      int    `json:"in_flight"` // submitted checks awaiting their result
	Injected      uint64 `json:"injected"`
	DelayP50Micro int64  `json:"delay_p50_us"`
	DelayP99Micro int64  `json:"delay_p99_us"`
	DelayMaxMicro int64  `json:"delay_max_us"`
	Module        any    `json:"module,omitempty"`
}

// gearbridge_stats returns the module's counters and the injection delay
// percentiles as a malloc'd JSON string (the caller frees it). Main thread
// only.
//
//export gearbridge_stats
func gearbridge_stats() *C.char {
	defer recovered("stats")
	m := handle
	r := statsReport{Core: coreName, Inits: m.inits, InFlight: m.watch.Len()}
	m.delayMu.Lock()
	ds := slices.Clone(m.delays)
	r.Injected = m.drained
	m.delayMu.Unlock()
	slices.Sort(ds)
	if n := len(ds); n > 0 {
		r.DelayP50Micro = ds[n/2].Microseconds()
		r.DelayP99Micro = ds[min(n-1, n*99/100)].Microseconds()
		r.DelayMaxMicro = ds[n-1].Microseconds()
	}
	if m.mod != nil {
		r.Module = m.mod.Stats()
	}
	b, _ := json.Marshal(r)
	return C.CString(string(b))
}
