package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// fakeGearman is an in-memory gearmand for unit tests: queues of jobs,
// worker connections that grab on demand, and requeue on close.
type fakeGearman struct {
	mu         sync.Mutex
	queues     map[string][]*GrabbedJob
	wake       chan struct{}
	nextH      int
	grabbed    map[string]*fakeConn // handle → conn holding it
	completed  []string
	replies    map[string][]byte // handle → data of a completion with data
	failed     []string
	results    []submitted
	conns      []*fakeConn
	failSubmit int   // fail this many submits before succeeding
	submitErr  error // the error of a failed submit; nil means a temporary one
	pingErr    error // what Ping answers
	// grabGate, when set, holds every grab of a check queue (not of a
	// status queue) until it is closed.
	grabGate chan struct{}
}

type submitted struct {
	queue   string
	payload []byte
}

func newFakeGearman() *fakeGearman {
	return &fakeGearman{queues: map[string][]*GrabbedJob{}, wake: make(chan struct{}), grabbed: map[string]*fakeConn{},
		replies: map[string][]byte{}}
}

func (f *fakeGearman) add(queue string, data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextH++
	h := fmt.Sprintf("H:fake:%d", f.nextH)
	f.queues[queue] = append(f.queues[queue], &GrabbedJob{Handle: h, Queue: queue, Data: data})
	close(f.wake)
	f.wake = make(chan struct{})
	return h
}

func (f *fakeGearman) queued(queue string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queues[queue])
}

func (f *fakeGearman) snapshot() (completed, failed []string, results []submitted) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.completed...), append([]string(nil), f.failed...), append([]submitted(nil), f.results...)
}

func (f *fakeGearman) Servers() []string { return []string{"fake:4730"} }

func (f *fakeGearman) DialWorker(_ context.Context, _, _ string, queues []string) (WorkerConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeConn{f: f, queues: queues, held: map[string]*GrabbedJob{}}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *fakeGearman) Results() ResultSubmitter { return f }

func (f *fakeGearman) SubmitResult(_ context.Context, queue string, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSubmit > 0 {
		f.failSubmit--
		if f.submitErr != nil {
			return f.submitErr
		}
		return errors.New("fake: gearmand unavailable")
	}
	f.results = append(f.results, submitted{queue, payload})
	return nil
}

func (f *fakeGearman) Close() error { return nil }

func (f *fakeGearman) Ping(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

type fakeConn struct {
	f      *fakeGearman
	queues []string
	held   map[string]*GrabbedJob
	closed bool
}

func (c *fakeConn) TryGrab(ctx context.Context) (*GrabbedJob, error) {
	c.f.mu.Lock()
	gate := c.f.grabGate
	c.f.mu.Unlock()
	if gate != nil && !strings.HasPrefix(c.queues[0], "worker_") {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return nil, errors.New("fake: closed")
	}
	for _, q := range c.queues {
		if js := c.f.queues[q]; len(js) > 0 {
			j := js[0]
			c.f.queues[q] = js[1:]
			c.held[j.Handle] = j
			c.f.grabbed[j.Handle] = c
			return j, nil
		}
	}
	return nil, nil
}

func (c *fakeConn) Sleep(ctx context.Context) error {
	c.f.mu.Lock()
	for _, q := range c.queues {
		if len(c.f.queues[q]) > 0 {
			c.f.mu.Unlock()
			return nil
		}
	}
	wake := c.f.wake
	c.f.mu.Unlock()
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *fakeConn) finish(handle string, ok bool, data []byte) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if _, held := c.held[handle]; !held || c.closed {
		return errors.New("fake: JOB_NOT_FOUND")
	}
	delete(c.held, handle)
	delete(c.f.grabbed, handle)
	if ok {
		c.f.completed = append(c.f.completed, handle)
		if data != nil {
			c.f.replies[handle] = data
		}
	} else {
		c.f.failed = append(c.f.failed, handle)
	}
	return nil
}

func (c *fakeConn) Complete(_ context.Context, handle string, data []byte) error {
	return c.finish(handle, true, data)
}
func (c *fakeConn) Fail(_ context.Context, handle string) error { return c.finish(handle, false, nil) }

func (c *fakeConn) CantDo(queue string) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.queues = slices.DeleteFunc(slices.Clone(c.queues), func(q string) bool { return q == queue })
	return nil
}

// Close requeues what the connection held, like gearmand.
func (c *fakeConn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for h, j := range c.held {
		c.f.queues[j.Queue] = append([]*GrabbedJob{j}, c.f.queues[j.Queue]...)
		delete(c.f.grabbed, h)
	}
	c.held = map[string]*GrabbedJob{}
	close(c.f.wake)
	c.f.wake = make(chan struct{})
	return nil
}

// testEnv is a bridge served over bufconn with real TLS and fresh certs.
type testEnv struct {
	t      *testing.T
	b      *Bridge
	fake   *fakeGearman
	lis    *bufconn.Listener
	caDir  string
	ca     *certs.CA
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	// stopOnce makes stop safe to call from a test and its cleanup.
	stopOnce sync.Once
}

// newBridgeCA creates a CA in dir and the bridge's certificate for
// "bridge.test" as dir/bridge.crt and dir/bridge.key.
func newBridgeCA(t *testing.T, dir string) *certs.CA {
	t.Helper()
	ca, err := certs.InitCA(dir, certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"bridge.test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "bridge.crt"), crt, 0o644)
	writeFile(t, filepath.Join(dir, "bridge.key"), key, 0o600)
	return ca
}

func newTestEnv(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	ca := newBridgeCA(t, dir)
	srvTLS, err := certs.ServerTLSConfig(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Key = "should_be_changed"
	cfg.Authz = AllowAll()
	cfg.DrainTimeout = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	fake := newFakeGearman()
	reg := prometheus.NewRegistry()
	b, err := New(cfg, Deps{Gearman: fake, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{t: t, b: b, fake: fake, lis: lis, caDir: dir, ca: ca, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- b.Serve(ctx, lis, srvTLS) }()
	t.Cleanup(e.stop)
	return e
}

// stop stops the bridge and waits for it; it may be called twice.
func (e *testEnv) stop() {
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			e.t.Error("bridge did not stop within 10s")
		}
	})
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := certs.WriteFileAtomic(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// dial returns a client connection authenticated as role/name.
func (e *testEnv) dial(role certs.Role, name string) *grpc.ClientConn {
	e.t.Helper()
	return e.dialFor(role, name, time.Hour)
}

// dialFor is dial with a certificate valid for lifetime.
func (e *testEnv) dialFor(role certs.Role, name string, lifetime time.Duration) *grpc.ClientConn {
	e.t.Helper()
	crt, key, err := e.ca.IssueClient(role, name, lifetime)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := e.t.TempDir()
	writeFile(e.t, filepath.Join(dir, "c.crt"), crt, 0o644)
	writeFile(e.t, filepath.Join(dir, "c.key"), key, 0o600)
	tc, err := certs.ClientTLSConfig(filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(e.caDir, "ca.crt"), "bridge.test")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.dialTLS(tc)
}

func (e *testEnv) dialTLS(tc *tls.Config) *grpc.ClientConn {
	e.t.Helper()
	cc, err := grpc.NewClient("passthrough:///bridge.test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// session opens a Work stream and performs the hello.
func (e *testEnv) session(cc *grpc.ClientConn, hello *pb.Hello) (pb.WorkerService_WorkClient, *pb.Welcome, context.CancelFunc) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	st, err := pb.NewWorkerServiceClient(cc).Work(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	// io.EOF means the bridge already ended the stream (a refusal); the
	// status comes with Recv.
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: hello}}); err != nil && !errors.Is(err, io.EOF) {
		e.t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		cancel()
		return st, nil, cancel
	}
	return st, m.GetWelcome(), cancel
}

// recvJob waits for the next message and requires it to be a job.
func recvMsg(t *testing.T, st pb.WorkerService_WorkClient, timeout time.Duration) *pb.WorkResponse {
	t.Helper()
	ch := make(chan *pb.WorkResponse, 1)
	errc := make(chan error, 1)
	go func() {
		m, err := st.Recv()
		if err != nil {
			errc <- err
			return
		}
		ch <- m
	}()
	select {
	case m := <-ch:
		return m
	case err := <-errc:
		t.Fatalf("recv: %v", err)
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
	}
	return nil
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
