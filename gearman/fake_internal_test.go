package gearman

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Edge cases that a real gearmand does not produce on demand, against a
// scripted server on the other end of a net.Pipe.

// fakeConn is the server side of one client connection.
type fakeConn struct {
	nc net.Conn
	pr *PacketReader
	mu sync.Mutex // serializes writes
}

func (f *fakeConn) read(t *testing.T) (*Packet, error) {
	t.Helper()
	return f.pr.ReadPacket()
}

func (f *fakeConn) send(t PacketType, args ...string) error {
	var bs [][]byte
	for _, a := range args {
		bs = append(bs, []byte(a))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.nc.Write(AppendPacket(nil, MagicRes, t, bs...))
	return err
}

// fakeServer hands each dialed connection to serve in its own goroutine.
type fakeServer struct {
	t     *testing.T
	serve func(f *fakeConn)
	dials atomic.Int32
	// maxDials, when positive, makes later dials fail.
	maxDials int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newFakeServer(t *testing.T, serve func(f *fakeConn)) *fakeServer {
	s := &fakeServer{t: t, serve: serve}
	t.Cleanup(func() {
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) dial(ctx context.Context, addr string) (net.Conn, error) {
	if n := s.dials.Add(1); s.maxDials > 0 && n > s.maxDials {
		return nil, errors.New("fake server: connection refused")
	}
	cl, sv := net.Pipe()
	s.mu.Lock()
	s.conns = append(s.conns, sv)
	s.mu.Unlock()
	s.wg.Go(func() {
		defer sv.Close()
		s.serve(&fakeConn{nc: sv, pr: NewPacketReader(sv, 0, 0)})
	})
	return cl, nil
}

// handshake answers the client's OPTION_REQ.
func (f *fakeConn) handshake(t *testing.T) bool {
	p, err := f.read(t)
	if err != nil || p.Type != PktOptionReq {
		return false
	}
	return f.send(PktOptionRes, "exceptions") == nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientMatchesPipelinedRepliesInOrder(t *testing.T) {
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			data := string(p.Arg(2))
			if strings.HasPrefix(data, "bad") {
				f.send(PktError, "QUEUE_ERROR", "full "+data)
			} else {
				f.send(PktJobCreated, "H:"+data)
			}
		}
	})
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial, Window: 16})
	defer c.Close()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			data := fmt.Sprint(i)
			if i%7 == 0 {
				data = fmt.Sprint("bad", i)
			}
			h, err := c.Submit(ctx, "fn", "", []byte(data), PriorityNormal, true)
			var se *ServerError
			switch {
			case i%7 == 0:
				if !errors.As(err, &se) || se.Code != CodeQueueFull || se.Text != "full "+data {
					t.Errorf("submit %s: %v, want its own ServerError", data, err)
				}
			case err != nil || h != "H:"+data:
				t.Errorf("submit %s = %q, %v, want its own handle", data, h, err)
			}
		})
	}
	wg.Wait()
}

func TestClientWindowBoundsInFlight(t *testing.T) {
	const window = 4
	arrived := make(chan string, 100)
	release := make(chan struct{})
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		var pending []string
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			pending = append(pending, string(p.Arg(2)))
			arrived <- string(p.Arg(2))
			if len(pending) == window {
				<-release
				for _, d := range pending {
					f.send(PktJobCreated, "H:"+d)
				}
				pending = nil
			}
		}
	})
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial, Window: window})
	defer c.Close()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 2 * window {
		wg.Go(func() {
			if _, err := c.Submit(ctx, "fn", "", []byte(fmt.Sprint(i)), PriorityNormal, true); err != nil {
				t.Error(err)
			}
		})
	}
	for range window {
		<-arrived
	}
	select {
	case d := <-arrived:
		t.Fatalf("request %s sent beyond a window of %d", d, window)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	wg.Wait()
}

func TestClientCancelledSubmitLeavesPipelineInStep(t *testing.T) {
	got := make(chan string, 10)
	replyFirst := make(chan struct{})
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		for i := 0; ; i++ {
			p, err := f.read(t)
			if err != nil {
				return
			}
			got <- string(p.Arg(2))
			if i == 0 {
				<-replyFirst // hold the first reply until its caller gave up
			}
			f.send(PktJobCreated, "H:"+string(p.Arg(2)))
		}
	})
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial})
	defer c.Close()
	ctx := testCtx(t)

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Submit(cctx, "fn", "", []byte("first"), PriorityNormal, true)
		errc <- err
	}()
	<-got
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("cancelled submit: %v, want context.Canceled", err)
	}
	close(replyFirst)
	h, err := c.Submit(ctx, "fn", "", []byte("second"), PriorityNormal, true)
	if err != nil || h != "H:second" {
		t.Fatalf("next submit = %q, %v; the late reply must be consumed by the cancelled call", h, err)
	}
}

func TestClientConnectionLossFailsEveryCallInFlight(t *testing.T) {
	const inFlight = 10
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		for i := 0; ; i++ {
			p, err := f.read(t)
			if err != nil {
				return
			}
			if string(p.Arg(2)) == "after" {
				f.send(PktJobCreated, "H:after")
				continue
			}
			if i == inFlight-1 {
				return // close the connection with all requests unanswered
			}
		}
	})
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial, BackoffMin: time.Millisecond})
	defer c.Close()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	var lost atomic.Int32
	for range inFlight {
		wg.Go(func() {
			_, err := c.Submit(ctx, "fn", "", nil, PriorityNormal, true)
			if errors.Is(err, ErrConnectionLost) {
				lost.Add(1)
			} else {
				t.Errorf("submit on a dying connection: %v, want ErrConnectionLost", err)
			}
		})
	}
	wg.Wait()
	if lost.Load() != inFlight {
		t.Fatalf("%d of %d calls saw the loss", lost.Load(), inFlight)
	}
	// The client reconnects by itself.
	h, err := c.Submit(ctx, "fn", "", []byte("after"), PriorityNormal, true)
	if err != nil || h != "H:after" {
		t.Fatalf("submit after reconnect = %q, %v", h, err)
	}
	if n := srv.dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

func TestClientUnsolicitedReplyIsProtocolError(t *testing.T) {
	sent := make(chan struct{})
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		f.read(t)
		f.send(PktJobCreated, "H:1")
		f.send(PktJobCreated, "H:2") // nobody asked
		close(sent)
		f.read(t)
	})
	srv.maxDials = 1
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial, BackoffMin: time.Hour})
	defer c.Close()
	ctx := testCtx(t)
	cc, err := c.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, "fn", "", nil, PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	<-sent
	select {
	case <-cc.dead:
	case <-ctx.Done():
		t.Fatal("connection survived an unsolicited JOB_CREATED")
	}
	if err := cc.cause(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("connection failed with %v, want ErrProtocol", err)
	}
}

func TestClientDoRoutesResultsByHandle(t *testing.T) {
	srv := newFakeServer(t, func(f *fakeConn) {
		if !f.handshake(t) {
			return
		}
		var handles []string
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			h := "H:" + string(p.Arg(2))
			f.send(PktJobCreated, h)
			handles = append(handles, h)
			if len(handles) < 3 {
				continue
			}
			// Answer out of order, with progress packets in between.
			f.send(PktWorkData, handles[2], "partial")
			f.send(PktWorkStatus, handles[1], "1", "2")
			f.send(PktWorkException, handles[2], "boom")
			f.send(PktWorkFail, handles[1])
			f.send(PktWorkComplete, handles[0], "ok")
			f.send(PktWorkComplete, "H:unknown", "ignored")
			handles = nil
		}
	})
	c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial})
	defer c.Close()
	ctx := testCtx(t)
	type res struct {
		data []byte
		err  error
	}
	out := make([]chan res, 3)
	for i := range out {
		out[i] = make(chan res, 1)
		go func() {
			d, err := c.Do(ctx, "fn", "", []byte(fmt.Sprint(i)), PriorityNormal)
			out[i] <- res{d, err}
		}()
		time.Sleep(10 * time.Millisecond) // fix the submit order
	}
	if r := <-out[0]; r.err != nil || string(r.data) != "ok" {
		t.Errorf("job 0 = %q, %v", r.data, r.err)
	}
	if r := <-out[1]; !errors.Is(r.err, ErrWorkFail) {
		t.Errorf("job 1: %v, want ErrWorkFail", r.err)
	}
	var ex *WorkException
	if r := <-out[2]; !errors.As(r.err, &ex) || string(ex.Data) != "boom" || ex.Handle != "H:2" {
		t.Errorf("job 2: %v, want WorkException boom", r.err)
	}
}

func TestWorkerAbandonedGrabKeepsItsJob(t *testing.T) {
	var grabs atomic.Int32
	assign := make(chan struct{})
	srv := newFakeServer(t, func(f *fakeConn) {
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			if p.Type != PktGrabJobUniq {
				continue
			}
			grabs.Add(1)
			<-assign
			f.send(PktJobAssignUniq, "H:1", "fn", "u1", "payload\x00with nul")
		}
	})
	ctx := testCtx(t)
	wc, err := DialWorker(ctx, "fake", WorkerOptions{Dialer: srv.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	gctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := wc.Grab(gctx)
		errc <- err
	}()
	for grabs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("cancelled Grab: %v", err)
	}
	close(assign) // the job arrives after its Grab gave up
	for orphans := 0; orphans == 0; time.Sleep(time.Millisecond) {
		wc.mu.Lock()
		orphans = len(wc.orphans)
		wc.mu.Unlock()
	}
	job, err := wc.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if job.Handle != "H:1" || job.Function != "fn" || job.Unique != "u1" || string(job.Data) != "payload\x00with nul" {
		t.Fatalf("job = %+v", job)
	}
	if n := grabs.Load(); n != 1 {
		t.Fatalf("%d GRAB_JOB_UNIQ sent, want 1: the orphaned job must be handed out without grabbing again", n)
	}
}

func TestWorkerSleepsUntilNoop(t *testing.T) {
	var sleeps atomic.Int32
	wake := make(chan struct{})
	srv := newFakeServer(t, func(f *fakeConn) {
		jobs := 0
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			switch p.Type {
			case PktGrabJobUniq:
				if jobs == 0 {
					f.send(PktNoJob)
					continue
				}
				jobs--
				f.send(PktJobAssignUniq, "H:9", "fn", "", "d")
			case PktPreSleep:
				sleeps.Add(1)
				go func() {
					<-wake
					f.send(PktNoop)
				}()
				jobs = 1
			}
		}
	})
	ctx := testCtx(t)
	wc, err := DialWorker(ctx, "fake", WorkerOptions{Dialer: srv.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	jobc := make(chan *Job, 1)
	go func() {
		j, _ := wc.Grab(ctx)
		jobc <- j
	}()
	for sleeps.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-jobc:
		t.Fatal("Grab returned before NOOP")
	case <-time.After(50 * time.Millisecond):
	}
	close(wake)
	if j := <-jobc; j == nil || j.Handle != "H:9" {
		t.Fatalf("job after NOOP = %+v", j)
	}
}

func TestWorkerServerErrorCallback(t *testing.T) {
	srv := newFakeServer(t, func(f *fakeConn) {
		for {
			p, err := f.read(t)
			if err != nil {
				return
			}
			if p.Type == PktWorkComplete {
				f.send(PktError, "JOB_NOT_FOUND", "Job given in work result not found")
			}
		}
	})
	ctx := testCtx(t)
	errc := make(chan *ServerError, 1)
	wc, err := DialWorker(ctx, "fake", WorkerOptions{Dialer: srv.dial, OnServerError: func(_ string, e *ServerError) { errc <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.Complete("H:nope", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-errc:
		if e.Code != CodeJobNotFound {
			t.Fatalf("server error %v", e)
		}
	case <-ctx.Done():
		t.Fatal("no server error reported")
	}
	if wc.Err() != nil {
		t.Fatalf("an ERROR packet must not kill the connection: %v", wc.Err())
	}
}

func TestInvalidArguments(t *testing.T) {
	c := NewClient(nil, ClientOptions{})
	defer c.Close()
	ctx := testCtx(t)
	for _, tc := range []struct{ fn, unique string }{
		{"", ""},
		{"f\x00n", ""},
		{"fn", "u\x00"},
		{"fn", strings.Repeat("u", MaxUniqueLen+1)},
		{strings.Repeat("f", MaxFunctionLen+1), ""},
	} {
		if _, err := c.Submit(ctx, tc.fn, tc.unique, nil, PriorityNormal, true); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Submit(%q, %q): %v, want ErrInvalidArgument", tc.fn, tc.unique, err)
		}
	}
	if _, err := c.Submit(ctx, "fn", "", nil, Priority(9), true); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad priority: %v", err)
	}
	if _, err := c.Submit(ctx, "fn", "", nil, PriorityNormal, true); !errors.Is(err, ErrNoServer) {
		t.Errorf("no servers: %v, want ErrNoServer", err)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	for i, ceil := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		ceil *= time.Millisecond
		d := b.next()
		if d < ceil/2 || d > ceil {
			t.Errorf("delay %d = %v, want in [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// TestClientForgetsAConnectionThatDiesAtOnce: a connection that dies right
// after its handshake, before the client has made it the current one, must
// not stay current: requests would get it again and again, and spin.
func TestClientForgetsAConnectionThatDiesAtOnce(t *testing.T) {
	for i := range 1000 {
		srv := newFakeServer(t, func(f *fakeConn) { f.handshake(t) }) // then close
		srv.maxDials = 1
		c := NewClient([]string{"fake"}, ClientOptions{Dialer: srv.dial, BackoffMin: time.Hour, BackoffMax: time.Hour})
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			_, err := c.Echo(ctx, []byte("x"))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("round %d: echo on a dead connection succeeded", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: echo still running 10s after the connection died (spinning on it?)", i)
		}
		c.Close()
	}
}
