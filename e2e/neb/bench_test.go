package nebe2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestBenchmarkFigures prints the module's benchmark figures on the fake
// core (Naemon layout, encryption on, real gearmand):
//   - main-thread time per intercepted check (median and p99 of the
//     callback, 20,000 checks back to back);
//   - 2,000 checks/s paced for 10 s while a worker answers every job and
//     the loop injects the results: achieved rate and the loop's lag;
//   - result injection delay (p50/p99/max) from the moment the module took
//     the result off gearmand until process_check_result.
//
// Set GEARBRIDGE_NEB_BENCH_RATE / _SECONDS to change the paced run.
func TestBenchmarkFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: benchmark figures take about 15 s")
	}
	rate, secs := envInt("GEARBRIDGE_NEB_BENCH_RATE", 2000), envInt("GEARBRIDGE_NEB_BENCH_SECONDS", 10)
	srv := gearmantest.Start(t)
	codec, _ := modgearman.NewCodec(key, true)
	fc := startFakeCore(t, "naemon", "server="+srv.Addr()+" key="+key+" services=yes result_workers=2")
	fc.do("OK", "quiet 1")

	// A fast worker: every "rate*" job gets a result at once.
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	w := gearman.NewWorker([]string{srv.Addr()}, []string{"service"}, func(ctx context.Context, job *gearman.Job) ([]byte, error) {
		plain, err := codec.Decode(job.Data)
		if err != nil {
			return nil, err
		}
		j, err := modgearman.ParseJob(plain)
		if err != nil || !strings.HasPrefix(j.ServiceDescription, "rate") {
			return nil, err
		}
		now := time.Now()
		r := modgearman.Result{Type: "active", HostName: j.HostName, ServiceDescription: j.ServiceDescription,
			CoreStartTime: j.CoreTime, StartTime: now, FinishTime: now, ExitedOK: true, Output: "OK"}
		_, err = client.Submit(ctx, j.ResultQueue, "", codec.Encode(r.Marshal()), gearman.PriorityNormal, true)
		return nil, err
	}, gearman.WorkerOptions{Connections: 4, InFlight: 8})
	defer w.Close()

	bench := fc.do("BENCH", "bench 8000")
	run := fc.do("RATE", "rate %d %d", rate*secs, rate)
	// Let the last results arrive.
	deadline := time.Now().Add(30 * time.Second)
	var st statsReport
	for {
		fc.do("WAITED", "wait 1000000 200")
		st = stats(t, fc)
		if st.Injected >= uint64(rate*secs) || time.Now().After(deadline) {
			break
		}
	}
	m := st.Module
	report := fmt.Sprintf(`gearbridge NEB benchmark (fake core, Naemon layout, AES on, real gearmand)
  main-thread time per intercepted check: %s
  paced run %d checks/s for %d s:        %s
  submitted to gearmand: %v, not submitted: %v, submit failures: %v
  results injected: %d; injection delay p50 %d µs, p99 %d µs, max %d µs`,
		strings.TrimPrefix(bench, "BENCH "), rate, secs, strings.TrimPrefix(run, "RATE "),
		m["Submitted"], m["NotSubmitted"], m["SubmitFailed"], st.Injected, st.DelayP50Micro, st.DelayP99Micro, st.DelayMaxMicro)
	t.Log("\n" + report)
	fmt.Println(report)
	if st.Injected < uint64(rate*secs) {
		t.Errorf("only %d of %d results injected", st.Injected, rate*secs)
	}
	if st.DelayP99Micro > 100000 {
		t.Errorf("injection delay p99 %d µs > 100 ms", st.DelayP99Micro)
	}
	fc.do("BYE", "quit")
}

func envInt(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil && v > 0 {
		return v
	}
	return def
}
