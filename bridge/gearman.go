package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
)

// Gearman is the bridge's view of gearmand: worker connections for sessions
// and a client for results.
type Gearman interface {
	// Servers lists the gearmand addresses; a session holds one worker
	// connection to each.
	Servers() []string
	// DialWorker opens one worker connection to server, announced as
	// clientID, able to do queues.
	DialWorker(ctx context.Context, server, clientID string, queues []string) (WorkerConn, error)
	// Results is where results go.
	Results() ResultSubmitter
	// Close releases the result client.
	Close() error
}

// WorkerConn is one Gearman worker connection as a session uses it.
type WorkerConn interface {
	// TryGrab asks for one job. It returns nil, nil when none is queued.
	TryGrab(ctx context.Context) (*GrabbedJob, error)
	// Sleep announces PRE_SLEEP and returns when gearmand wakes the
	// connection (NOOP) or ctx ends.
	Sleep(ctx context.Context) error
	// Complete finishes a job successfully; data is its answer to a
	// foreground client (nil for checks, whose results go to a queue).
	Complete(ctx context.Context, handle string, data []byte) error
	// Fail finishes a job as failed.
	Fail(ctx context.Context, handle string) error
	// CantDo unregisters a queue, so that gearmand offers none of its jobs
	// on this connection any more.
	CantDo(queue string) error
	// Close ends the connection; gearmand requeues its unfinished jobs.
	Close() error
}

// GrabbedJob is a job assigned by gearmand.
type GrabbedJob struct {
	Handle string
	Queue  string
	Data   []byte
}

// ResultSubmitter puts encoded results on a result queue.
type ResultSubmitter interface {
	// SubmitResult submits payload as a NORMAL background job with a fresh
	// unique and returns once gearmand accepted it.
	SubmitResult(ctx context.Context, queue string, payload []byte) error
}

// QueuedResult is one encoded result and the queue it goes to.
type QueuedResult struct {
	Queue   string
	Payload []byte
}

// batchSubmitter is a ResultSubmitter that submits several results at
// once, sharing writes and one wait for gearmand's replies.
type batchSubmitter interface {
	// SubmitResults submits every result; errs[i] is that of rs[i].
	SubmitResults(ctx context.Context, rs []QueuedResult) []error
}

// submitResults submits rs together when r can, else one by one.
func submitResults(ctx context.Context, r ResultSubmitter, rs []QueuedResult) []error {
	if bs, ok := r.(batchSubmitter); ok {
		return bs.SubmitResults(ctx, rs)
	}
	errs := make([]error, len(rs))
	for i, q := range rs {
		errs[i] = r.SubmitResult(ctx, q.Queue, q.Payload)
	}
	return errs
}

// batchCompleter is a WorkerConn that completes several jobs in one write.
type batchCompleter interface {
	CompleteAll(handles []string) error
}

// NewGearman connects the bridge to real gearmand servers through the
// gearman package.
func NewGearman(servers []string, log *slog.Logger) Gearman {
	return &realGearman{
		servers: servers,
		log:     log,
		// Results of a batch from a worker are submitted together: one
		// write to gearmand per batch (resultFlushDelay).
		client: gearman.NewClient(servers, gearman.ClientOptions{Logger: log, FlushDelay: resultFlushDelay}),
	}
}

type realGearman struct {
	servers []string
	log     *slog.Logger
	client  *gearman.Client
}

func (g *realGearman) Servers() []string { return g.servers }

func (g *realGearman) DialWorker(ctx context.Context, server, clientID string, queues []string) (WorkerConn, error) {
	wc, err := gearman.DialWorker(ctx, server, gearman.WorkerOptions{Logger: g.log, ClientID: clientID})
	if err != nil {
		return nil, err
	}
	for _, q := range queues {
		if err := wc.CanDo(q); err != nil {
			_ = wc.Close()
			return nil, fmt.Errorf("register queue %q on %s: %w", q, server, err)
		}
	}
	return realWorkerConn{wc}, nil
}

func (g *realGearman) Results() ResultSubmitter { return g }

// Ping asks server for its version over the admin protocol.
func (g *realGearman) Ping(ctx context.Context, server string) error {
	a := gearman.NewAdmin(server, gearman.AdminOptions{})
	defer a.Close()
	_, err := a.Version(ctx)
	return err
}

func (g *realGearman) SubmitResult(ctx context.Context, queue string, payload []byte) error {
	// An empty unique never coalesces: every result is its own job.
	_, err := g.client.Submit(ctx, queue, "", payload, gearman.PriorityNormal, true)
	return err
}

func (g *realGearman) SubmitResults(ctx context.Context, rs []QueuedResult) []error {
	return g.client.SubmitAll(ctx, backgroundJobs(rs))
}

// backgroundJobs are rs as NORMAL background jobs with fresh uniques.
func backgroundJobs(rs []QueuedResult) []gearman.BackgroundJob {
	jobs := make([]gearman.BackgroundJob, len(rs))
	for i, r := range rs {
		jobs[i] = gearman.BackgroundJob{Function: r.Queue, Data: r.Payload, Priority: gearman.PriorityNormal}
	}
	return jobs
}

func (g *realGearman) Close() error { return g.client.Close() }

type realWorkerConn struct{ wc *gearman.WorkerConn }

func (c realWorkerConn) TryGrab(ctx context.Context) (*GrabbedJob, error) {
	j, err := c.wc.TryGrab(ctx)
	if err != nil || j == nil {
		return nil, err
	}
	return &GrabbedJob{Handle: j.Handle, Queue: j.Function, Data: j.Data}, nil
}

func (c realWorkerConn) TryGrabN(ctx context.Context, n int) ([]*GrabbedJob, error) {
	js, err := c.wc.TryGrabN(ctx, n)
	if err != nil || len(js) == 0 {
		return nil, err
	}
	out := make([]*GrabbedJob, len(js))
	for i, j := range js {
		out[i] = &GrabbedJob{Handle: j.Handle, Queue: j.Function, Data: j.Data}
	}
	return out, nil
}

func (c realWorkerConn) Sleep(ctx context.Context) error { return c.wc.Sleep(ctx) }

func (c realWorkerConn) Complete(_ context.Context, handle string, data []byte) error {
	return c.wc.Complete(handle, data)
}

func (c realWorkerConn) CompleteSoon(handle string, d time.Duration) error {
	return c.wc.CompleteSoon(handle, d)
}

func (c realWorkerConn) CompleteAll(handles []string) error { return c.wc.CompleteAll(handles) }

func (c realWorkerConn) Fail(_ context.Context, handle string) error { return c.wc.Fail(handle) }

func (c realWorkerConn) CantDo(queue string) error { return c.wc.CantDo(queue) }

func (c realWorkerConn) Close() error { return c.wc.Close() }

// resultFlushDelay is how long a result submitted to gearmand waits for
// the others of its batch to share a write: nothing next to a check's
// own latency, and long enough for a batch's results to be finished.
const resultFlushDelay = time.Millisecond
