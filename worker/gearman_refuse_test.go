package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// logRecorder is a slog.Handler that keeps every record for the test.
type logRecorder struct {
	mu      sync.Mutex
	records []string // "LEVEL msg key=value ..."
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, b.String())
	r.mu.Unlock()
	return nil
}

// matching returns the records at level that contain every one of subs.
func (r *logRecorder) matching(level slog.Level, subs ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
next:
	for _, rec := range r.records {
		if !strings.HasPrefix(rec, level.String()+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(rec, s) {
				continue next
			}
		}
		out = append(out, rec)
	}
	return out
}

// TestGearmanRefusesJobsWithBadResultQueue: a job whose result queue
// gearmand cannot take (a space, more than 512 bytes) is failed towards
// gearmand when it is parsed, logged once with the reason and counted; it
// holds no slot, so the only slot runs the next good job at once, and it
// is not requeued.
func TestGearmanRefusesJobsWithBadResultQueue(t *testing.T) {
	srv := gearmantest.Start(t)
	cfg := gearmanConfig("service")
	cfg.Slots = 1
	logs := &logRecorder{}
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	w, err := NewGearman(cfg, GearmanOptions{Servers: []string{srv.Addr()}, Codec: codec}, Deps{Version: "test", Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	runGearmanWorker(t, w)

	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := []string{"my results", strings.Repeat("q", 513)}
	for i, q := range append(bad, "check_results") {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: q, HostName: "h", ServiceDescription: fmt.Sprint("s", i),
			Timeout: 10 * time.Second, CommandLine: "/bin/echo OK " + fmt.Sprint(i)}
		if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}

	// The good job, queued last, gets its result although the worker has
	// one slot.
	rc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.CanDo("check_results"); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	gj, err := rc.Grab(gctx)
	if err != nil {
		t.Fatalf("no result for the good job behind the bad ones: %v", err)
	}
	_ = rc.Complete(gj.Handle, nil)
	if plain, _ := codec.Decode(gj.Data); !strings.Contains(string(plain), "output=OK 2") {
		t.Fatalf("result %q, want the good job's", plain)
	}

	if got := testutil.ToFloat64(w.m.invalid); got != 2 {
		t.Errorf("invalid jobs counted: %v, want 2", got)
	}
	admin := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	defer admin.Close()
	// The good job is completed right after its result is sent.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range st {
			if f.Name == bad[0] || f.Name == bad[1] {
				t.Fatalf("a result reached the queue %.20q…", f.Name)
			}
		}
		total := -1
		for _, f := range st {
			if f.Name == "service" {
				total = f.Total
			}
		}
		if total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service queue holds %d jobs: the bad jobs were requeued, want them failed", total)
		}
	}
	for _, q := range bad {
		q = fmt.Sprintf("%.20s", q)
		if got := logs.matching(slog.LevelError, "result_queue", q); len(got) != 1 {
			t.Errorf("want one error log naming result_queue %q…, got %q", q, got)
		} else if strings.Contains(got[0], "encryption key") {
			t.Errorf("log blames the key for a job that decoded: %s", got[0])
		}
	}
}

// fakeResults is a result queue that answers Submit from a script.
type fakeResults struct {
	mu    sync.Mutex
	errs  []error // returned in turn; nil once exhausted
	calls int
}

func (f *fakeResults) Submit(ctx context.Context, fn, unique string, data []byte, prio gearman.Priority, bg bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) == 0 {
		return "H:fake:1", nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return "", err
}

// TestGearmanSubmitStopsAtPermanentErrors: a result that gearmand refuses
// for good is not retried; one it refuses for now is.
func TestGearmanSubmitStopsAtPermanentErrors(t *testing.T) {
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	w, err := NewGearman(gearmanConfig("service"), GearmanOptions{Servers: []string{"127.0.0.1:1"}, Codec: codec},
		Deps{Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	job := modgearman.Job{Type: modgearman.JobHost, ResultQueue: "check_results", HostName: "h", CommandLine: "c"}
	res := job.Answer(0, "OK", time.Now(), time.Now(), "test")
	tooLarge := fmt.Errorf("submit job to check_results: %w", &gearman.ServerError{Code: gearman.CodeArgumentTooLarge})
	queueFull := fmt.Errorf("submit job to check_results: %w", &gearman.ServerError{Code: gearman.CodeQueueFull})
	lost := fmt.Errorf("submit job to check_results: %w: %w", gearman.ErrConnectionLost, io.EOF)
	for _, tc := range []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   error
	}{
		{"permanent at once", []error{tooLarge}, 1, tooLarge},
		{"invalid argument", []error{gearman.ErrInvalidArgument}, 1, gearman.ErrInvalidArgument},
		{"temporary, then permanent", []error{lost, tooLarge}, 2, tooLarge},
		{"temporary ones are retried", []error{queueFull, lost}, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			f := &fakeResults{errs: tc.errs}
			err := w.submit(ctx, job, res, f)
			if ctx.Err() != nil {
				t.Fatalf("submit still retrying after 5s (%d calls): %v", f.calls, err)
			}
			if f.calls != tc.wantCalls {
				t.Errorf("%d submits, want %d", f.calls, tc.wantCalls)
			}
			if !errors.Is(err, tc.wantErr) && (tc.wantErr != nil || err != nil) {
				t.Errorf("submit = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestGearmanRefusesBadNames: names that gearmand would garble or refuse
// are configuration errors, not endless reconnects.
func TestGearmanRefusesBadNames(t *testing.T) {
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	for _, tc := range []struct {
		name   string
		change func(*Config, *GearmanOptions)
		want   string
	}{
		{"identifier with a space", func(c *Config, _ *GearmanOptions) { c.Identifier = "my worker" }, "identifier"},
		{"identifier gearmand would cut", func(c *Config, _ *GearmanOptions) { c.Identifier = strings.Repeat("i", 128) }, "identifier"},
		{"queue with a tab", func(c *Config, _ *GearmanOptions) { c.Queues = []string{"service", "host\tgroup"} }, "queue"},
		{"result queue with a control byte", func(_ *Config, g *GearmanOptions) { g.ResultQueue = "results\x01" }, "result queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gearmanConfig("service")
			g := GearmanOptions{Servers: []string{"127.0.0.1:1"}, Codec: codec}
			tc.change(&cfg, &g)
			_, err := NewGearman(cfg, g, Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewGearman = %v, want an error naming the %s", err, tc.want)
			}
		})
	}
}

// queueNameSeeds are names on both sides of every rule.
var queueNameSeeds = []string{
	"", "check_results", "worker_host.example.com", "hostgroup_dc1:rack_é", "a b", "a\tb", "a\nb", "a\rb",
	"a\x00b", "a\x01b", "a\x7f", "\xff", strings.Repeat("q", 512), strings.Repeat("q", 513),
}

// TestGearmanQueueNameRulesAgree: the payload codec and the protocol
// package keep one rule for queue names in two places (neither may import
// the other); they must give the same answers.
func TestGearmanQueueNameRulesAgree(t *testing.T) {
	for _, name := range queueNameSeeds {
		checkQueueNameRules(t, name)
	}
}

func FuzzGearmanQueueNameRulesAgree(f *testing.F) {
	for _, name := range queueNameSeeds {
		f.Add(name)
	}
	f.Fuzz(checkQueueNameRules)
}

func checkQueueNameRules(t *testing.T, name string) {
	mg := modgearman.ValidQueueName(name)
	gm := gearman.ValidFunctionName(name)
	if (mg == nil) != (gm == nil) {
		t.Fatalf("queue name %q: modgearman says %v, gearman says %v", name, mg, gm)
	}
}

// runGearmanWorker runs w until the test ends.
func runGearmanWorker(t *testing.T, w *GearmanWorker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
	})
}
