package neb

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// MaxSaneLatency bounds a believable latency. Classic modules reported
// latencies of 1.7e9 s when a worker echoed garbage as core_start_time
// (spec §4.2); anything above a day is treated as such garbage and replaced
// by 0.
const MaxSaneLatency = 24 * time.Hour

// pingPayload is the raw text check_gearman sends to the result queue.
var pingPayload = []byte("check")

// handleResult is the gearman.Handler of the result workers.
func (m *Module) handleResult(ctx context.Context, job *gearman.Job) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic recovered", "in", "result", "panic", fmt.Sprint(r))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if bytes.Equal(bytes.TrimRight(job.Data, "\x00\r\n "), pingPayload) {
		m.c.pings.Add(1)
		return []byte(m.PingReply()), nil
	}
	now := m.now()
	plain, err := m.codec.DecodeAny(job.Data, m.cfg.AcceptClearResults)
	if err != nil {
		m.c.bad.Add(1)
		m.warnLimited("discarding result", "queue", job.Function, "err", err)
		return nil, err
	}
	r, err := modgearman.ParseResult(plain)
	if err != nil {
		m.c.bad.Add(1)
		m.warnLimited("discarding result", "queue", job.Function, "err", err)
		return nil, err
	}
	m.c.results.Add(1)
	cr, sane := ToCheckResult(r, now)
	if !sane {
		m.c.latencyDiscarded.Add(1)
	}
	if !cr.Passive {
		// A result that comes after the watchdog answered is still
		// delivered: the core takes it as the check's newer result.
		m.watch.Done(cr.HostName, cr.ServiceDescription)
	}
	m.deliver(cr)
	return nil, nil
}

// ToCheckResult maps a parsed result to what the core gets (spec §4.2):
// missing times default to now, and the latency is
// now − (finish − start) − core_start_time, clamped at 0, plus a positive
// latency= key. sane is false when the computed latency was absurd (more
// than MaxSaneLatency) and replaced by 0.
func ToCheckResult(r modgearman.Result, now time.Time) (cr CheckResult, sane bool) {
	start, finish, core := r.StartTime, r.FinishTime, r.CoreStartTime
	if start.IsZero() {
		start = now
	}
	if finish.IsZero() {
		finish = now
	}
	if finish.Before(start) {
		finish = start
	}
	if core.IsZero() {
		core = now
	}
	sane = true
	lat := now.Sub(core) - finish.Sub(start)
	if lat < 0 {
		lat = 0
	}
	if lat > MaxSaneLatency {
		lat, sane = 0, false
	}
	if r.Latency > 0 && r.Latency <= MaxSaneLatency {
		lat += r.Latency
	}
	return CheckResult{
		HostName: r.HostName, ServiceDescription: r.ServiceDescription, Passive: r.IsPassive(),
		ReturnCode: r.ReturnCode, ExitedOK: r.ExitedOK, EarlyTimeout: r.EarlyTimeout,
		StartTime: start, FinishTime: finish, Latency: lat, Output: r.Output, Source: r.Source,
		Received: now,
	}, sane
}

// PingReply is the status line answered to the raw "check" payload on the
// result queue (spec §2.10).
func (m *Module) PingReply() string {
	s := m.Stats()
	up := m.now().Sub(m.started).Seconds()
	rate := 0.0
	if up > 0 {
		rate = float64(s.Submitted) / up
	}
	avg := 0.0
	if s.Submitted > 0 {
		avg = float64(m.c.submitNanos.Load()) / float64(s.Submitted) / 1e9
	}
	n := m.cfg.ResultWorkers
	return fmt.Sprintf("0:OK - result worker running on %s. Sending %.1f jobs/s (avg duration:%.3fms). Version: %s|worker=%d;;;0;%d avg_submit_duration=%.6fs;;;0;%.6f jobs=%dc errors=%dc",
		m.opts.Hostname, rate, avg*1000, m.opts.Version, n, n, avg, m.opts.SubmitTimeout.Seconds(), s.Submitted,
		s.SubmitFailed+s.NotSubmitted+s.BadResults)
}
