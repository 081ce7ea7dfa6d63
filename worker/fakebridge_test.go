package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// waitTimeout bounds every wait in these tests; nothing should take nearly
// as long.
const waitTimeout = 10 * time.Second

// fakeBridge is an in-memory WorkerService the test drives message by
// message. Each accepted stream is handed to the test as a fakeStream.
type fakeBridge struct {
	pb.UnimplementedWorkerServiceServer
	name    string
	streams chan *fakeStream
	// refusal, when set, ends every stream right after its hello with
	// this error, as the bridge refuses a worker it does not authorize;
	// attempts gets the time of each refused hello.
	refusal  atomic.Pointer[error]
	attempts chan time.Time
}

// fakeStream is one Work stream as the bridge sees it.
type fakeStream struct {
	t      *testing.T
	hello  *pb.Hello
	st     pb.WorkerService_WorkServer
	reqs   chan *pb.WorkRequest // everything after the hello
	closed chan struct{}        // the worker ended its side
	end    chan error           // the test ends the stream with this status
	once   sync.Once
}

func (f *fakeBridge) Work(st pb.WorkerService_WorkServer) error {
	req, err := st.Recv()
	if err != nil {
		return err
	}
	if req.GetHello() == nil {
		return errors.New("first message is not a hello")
	}
	if err := f.refusal.Load(); err != nil {
		select {
		case f.attempts <- time.Now():
		default:
		}
		return *err
	}
	fs := &fakeStream{
		hello:  req.GetHello(),
		st:     st,
		reqs:   make(chan *pb.WorkRequest, 100),
		closed: make(chan struct{}),
		end:    make(chan error, 1),
	}
	go func() {
		defer close(fs.closed)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case fs.reqs <- r:
			case <-st.Context().Done():
				return
			}
		}
	}()
	select {
	case f.streams <- fs:
	case <-st.Context().Done():
		return st.Context().Err()
	}
	select {
	case err := <-fs.end:
		return err
	case <-fs.closed:
		return nil
	case <-st.Context().Done():
		return st.Context().Err()
	}
}

// bridges is a set of fake bridges reachable through one in-memory dialer.
type bridges struct {
	t     *testing.T
	byKey map[string]*fakeBridge
	lis   map[string]*bufconn.Listener
}

// newBridges starts one fake bridge per name; "down" names are dialable but
// refuse every connection.
func newBridges(t *testing.T, names ...string) *bridges {
	t.Helper()
	b := &bridges{t: t, byKey: map[string]*fakeBridge{}, lis: map[string]*bufconn.Listener{}}
	for _, n := range names {
		fb := &fakeBridge{name: n, streams: make(chan *fakeStream, 10), attempts: make(chan time.Time, 1000)}
		lis := bufconn.Listen(1 << 20)
		srv := grpc.NewServer()
		pb.RegisterWorkerServiceServer(srv, fb)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(lis)
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-done
		})
		b.byKey[n] = fb
		b.lis[n] = lis
	}
	return b
}

// target is the gRPC target of a fake bridge.
func target(name string) string { return "passthrough:///" + name }

func (b *bridges) dialer(ctx context.Context, addr string) (net.Conn, error) {
	lis, ok := b.lis[addr]
	if !ok {
		return nil, fmt.Errorf("no bridge %q", addr)
	}
	return lis.DialContext(ctx)
}

// accept waits for the next stream to bridge name.
func (b *bridges) accept(name string) *fakeStream {
	b.t.Helper()
	select {
	case fs := <-b.byKey[name].streams:
		fs.t = b.t
		return fs
	case <-time.After(waitTimeout):
		b.t.Fatalf("bridge %s: no stream within %v", name, waitTimeout)
		return nil
	}
}

// refuse makes bridge name end every stream after its hello with err;
// nil accepts streams again.
func (b *bridges) refuse(name string, err error) {
	if err == nil {
		b.byKey[name].refusal.Store(nil)
		return
	}
	b.byKey[name].refusal.Store(&err)
}

// refusedAttempts returns the times of the hellos bridge name refused so
// far.
func (b *bridges) refusedAttempts(name string) []time.Time {
	var ts []time.Time
	for {
		select {
		case at := <-b.byKey[name].attempts:
			ts = append(ts, at)
		default:
			return ts
		}
	}
}

// noStream checks that nothing connected to bridge name so far.
func (b *bridges) noStream(name string) {
	b.t.Helper()
	select {
	case fs := <-b.byKey[name].streams:
		b.t.Fatalf("bridge %s: unexpected stream with hello %v", name, fs.hello)
	default:
	}
}

func (fs *fakeStream) send(m *pb.WorkResponse) {
	fs.t.Helper()
	if err := fs.st.Send(m); err != nil {
		fs.t.Fatalf("bridge send %T: %v", m.GetMsg(), err)
	}
}

func (fs *fakeStream) welcome(session string, resumed bool) {
	fs.t.Helper()
	fs.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Welcome{Welcome: &pb.Welcome{
		SessionId:   session,
		Queues:      fs.hello.GetQueues(),
		Resumed:     resumed,
		ResumeGrace: durationpb.New(30 * time.Second),
	}}})
}

func (fs *fakeStream) job(j *pb.Job) {
	fs.t.Helper()
	fs.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Job{Job: j}})
}

func (fs *fakeStream) ack(id string) {
	fs.t.Helper()
	fs.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Ack{Ack: &pb.Ack{JobId: id}}})
}

func (fs *fakeStream) cancel(id string) {
	fs.t.Helper()
	fs.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Cancel{Cancel: &pb.Cancel{JobId: id, Reason: "test"}}})
}

func (fs *fakeStream) drain() {
	fs.t.Helper()
	fs.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Drain{Drain: &pb.Drain{Reason: "test"}}})
}

// hangUp ends the stream from the bridge side, as a crash or network loss
// would.
func (fs *fakeStream) hangUp() {
	fs.once.Do(func() { fs.end <- errors.New("bridge hung up") })
	select {
	case <-fs.closed:
	case <-time.After(waitTimeout):
		fs.t.Fatal("stream did not end after hang-up")
	}
}

// next returns the next message from the worker.
func (fs *fakeStream) next() *pb.WorkRequest {
	fs.t.Helper()
	select {
	case r := <-fs.reqs:
		return r
	case <-fs.closed:
		select {
		case r := <-fs.reqs:
			return r
		default:
		}
		fs.t.Fatal("worker closed the stream while a message was expected")
	case <-time.After(waitTimeout):
		fs.t.Fatalf("no message from the worker within %v", waitTimeout)
	}
	return nil
}

func (fs *fakeStream) expectResult() *pb.JobResult {
	fs.t.Helper()
	r := fs.next()
	if r.GetResult() == nil {
		fs.t.Fatalf("want a result, got %v", r)
	}
	return r.GetResult()
}

func (fs *fakeStream) expectCredit(n uint32) {
	fs.t.Helper()
	r := fs.next()
	if r.GetCredit() == nil || r.GetCredit().GetSlots() != n {
		fs.t.Fatalf("want credit %d, got %v", n, r)
	}
}

func (fs *fakeStream) expectDrain() {
	fs.t.Helper()
	if r := fs.next(); r.GetDrain() == nil {
		fs.t.Fatalf("want drain, got %v", r)
	}
}

// expectClosed waits until the worker ends the stream, failing on any
// message before that.
func (fs *fakeStream) expectClosed() {
	fs.t.Helper()
	select {
	case r := <-fs.reqs:
		fs.t.Fatalf("want the stream closed, got %v", r)
	case <-fs.closed:
		select {
		case r := <-fs.reqs:
			fs.t.Fatalf("want the stream closed, got %v", r)
		default:
		}
	case <-time.After(waitTimeout):
		fs.t.Fatal("worker did not close the stream")
	}
}

// quiet checks that the worker sent nothing so far.
func (fs *fakeStream) quiet() {
	fs.t.Helper()
	select {
	case r := <-fs.reqs:
		fs.t.Fatalf("unexpected message %v", r)
	default:
	}
}

// insecureDeps are worker deps for the fake bridges.
func (b *bridges) deps() Deps {
	return Deps{
		Credentials: insecure.NewCredentials(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(b.dialer)},
		Version:     "test",
	}
}
