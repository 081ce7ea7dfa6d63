package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// maxQueueName is gearmand's function name limit minus the NUL.
const maxQueueName = 511

type workerService struct {
	pb.UnimplementedWorkerServiceServer
	b *Bridge
}

// Work runs one attachment of a worker session.
func (w *workerService) Work(stream pb.WorkerService_WorkServer) error {
	b := w.b
	peer := peerAddr(stream.Context())
	id, err := b.authorize(stream.Context(), RoleWorker)
	if err != nil {
		return err
	}
	hello, err := recvHello(stream, b.cfg.HelloTimeout)
	if err != nil {
		return err
	}
	refuse := func(reason string, err error) error {
		b.m.sessionsRefused.WithLabelValues(reason).Inc()
		b.rl.Warn(b.log, id.Name+" "+reason, "refused worker session", "identity", id.Name,
			"identifier", cmp.Or(hello.GetIdentifier(), id.Name), "peer", peer, "reason", reason, "err", err)
		return err
	}
	queues, err := b.checkHello(id, hello, b.resumable(id, hello))
	if err != nil {
		reason := "invalid"
		if status.Code(err) == codes.PermissionDenied {
			reason = "queue"
		}
		return refuse(reason, err)
	}
	if err := b.checkIdentifier(id, hello.GetIdentifier()); err != nil {
		return refuse("identifier", err)
	}

	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return status.Error(codes.Unavailable, "bridge is shutting down")
	}
	var s *session
	resumed := false
	if sid := hello.GetSessionId(); sid != "" {
		if old := b.sessions[sid]; old != nil {
			if old.identity != id.Name {
				b.mu.Unlock()
				return refuse("session_owner", status.Errorf(codes.PermissionDenied, "session %s belongs to another identity", sid))
			}
			s, resumed = old, true
			s.setCert(id.Serial, id.NotAfter)
			s.setPeer(peer)
		}
	}
	if s == nil {
		// A resumed session is already counted; only a new one must fit.
		if reason, err := b.sessionRoomLocked(id); err != nil {
			b.mu.Unlock()
			return refuse(reason, err)
		}
		s = b.newSession(id, hello, queues, peer)
		b.sessions[s.id] = s
	}
	b.mu.Unlock()

	welcome := &pb.Welcome{
		SessionId:   s.id,
		Queues:      s.currentQueues(),
		Resumed:     resumed,
		ResumeGrace: durationpb.New(b.cfg.ResumeGrace),
		Batches:     true,
	}
	actx, err := s.attach(stream, int(capacity(hello)), int(hello.GetSlots()), maxReceive(hello), hello.GetBatches(), hello.GetHeldJobIds(), welcome)
	if err != nil {
		return status.Errorf(codes.Unavailable, "session %s: %v", s.id, err)
	}
	if resumed {
		s.log.Info("worker session resumed", "slots", hello.GetSlots(), "held", len(hello.GetHeldJobIds()), "peer", peer)
	} else {
		s.log.Info("worker session started", "queues", queues, "slots", hello.GetSlots(), "peer", peer)
		s.start()
	}

	recvErr := make(chan error, 1)
	go func() { recvErr <- w.recvLoop(s, stream) }()
	// A worker that stops reading its stream is detached after the send
	// timeout, so that it holds no job hostage; it resumes like after any
	// other disconnect.
	tick := time.NewTicker(max(b.cfg.SendTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case err = <-recvErr:
			s.detach(stream, err)
			if status.Code(err) == codes.InvalidArgument {
				return err
			}
			return nil
		case <-actx.Done():
			// Replaced by a newer stream of the same session, the session
			// closed (bridge shutdown), or the worker stopped reading.
			cause := context.Cause(actx)
			s.detach(stream, cause)
			if errors.Is(cause, errStalled) {
				s.log.Warn("worker stopped reading its stream; detached it", "err", cause)
				return status.Error(codes.Unavailable, cause.Error())
			}
			return status.Error(codes.Unavailable, "session moved or closed")
		case now := <-tick.C:
			if d := s.sendBlockedFor(stream, now); d > b.cfg.SendTimeout {
				b.m.stalled.Inc()
				s.stall(stream, fmt.Errorf("%w: a send has been blocked for %v", errStalled, d.Round(time.Millisecond)))
			}
		}
	}
}

// sessionRoomLocked reports whether one more session of id fits the
// limits, and if not, the reason (a metric label) and the status to refuse
// it with. Sessions waiting for their worker to resume count: they hold
// their gearmand connections. b.mu must be held.
func (b *Bridge) sessionRoomLocked(id Identity) (string, error) {
	mine := 0
	for _, s := range b.sessions {
		if s.identity == id.Name {
			mine++
		}
	}
	if mine >= b.cfg.MaxSessionsPerIdentity {
		return "identity_limit", status.Errorf(codes.ResourceExhausted,
			"identity %q already has %d sessions, the most one identity may hold (--max-sessions-per-identity); a disconnected session counts until its resume grace of %v ends",
			id.Name, mine, b.cfg.ResumeGrace)
	}
	if n := len(b.sessions); n >= b.cfg.MaxSessions {
		return "total_limit", status.Errorf(codes.ResourceExhausted,
			"the bridge already holds %d sessions, the most it may hold (--max-sessions)", n)
	}
	return "", nil
}

// maxReceive is the worker's receive limit from its hello; a worker that
// does not say has gRPC's default.
func maxReceive(h *pb.Hello) int {
	if n := h.GetMaxReceiveBytes(); n > 0 {
		return int(n)
	}
	return defaultMaxReceive
}

// defaultMaxReceive is gRPC's default receive limit (4 MiB).
const defaultMaxReceive = 4 << 20

func (w *workerService) recvLoop(s *session, stream pb.WorkerService_WorkServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := req.GetMsg().(type) {
		case *pb.WorkRequest_Credit:
			s.addCredit(m.Credit.GetSlots())
		case *pb.WorkRequest_Result:
			s.handleResult(m.Result)
		case *pb.WorkRequest_Results:
			// The results first: each frees the slot its credit is for.
			// A credit that came with a result is granted once that job
			// is completed towards gearmand (see runFinish), so that the
			// GRAB it causes never runs ahead of the completion. The
			// batch is finished together: one submit, one completion
			// write per gearmand, one grant of its credits.
			rs, credit := m.Results.GetResults(), m.Results.GetCredit()
			tied := min(int(credit), len(rs))
			gen := s.generation()
			reqs := make([]finishReq, 0, len(rs))
			for i, r := range rs {
				g := uint64(0)
				if i < tied {
					g = gen
				}
				if req, ok := s.acceptResult(r, g); ok {
					reqs = append(reqs, req)
				}
			}
			s.goFinish(reqs...)
			if rest := int(credit) - tied; rest > 0 {
				s.addCredit(uint32(rest))
			}
		case *pb.WorkRequest_Drain:
			s.mu.Lock()
			s.draining = true
			s.wakeLocked()
			s.mu.Unlock()
			s.log.Info("worker is draining", "reason", m.Drain.GetReason())
		default:
			w.b.m.refused.WithLabelValues("protocol").Inc()
			return status.Errorf(codes.InvalidArgument, "unexpected message %T after hello", m)
		}
	}
}

// recvHello waits for the first message, which must be a hello.
func recvHello(stream pb.WorkerService_WorkServer, timeout time.Duration) (*pb.Hello, error) {
	type res struct {
		req *pb.WorkRequest
		err error
	}
	ch := make(chan res, 1)
	go func() {
		req, err := stream.Recv()
		ch <- res{req, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.req.GetHello()
		if h == nil {
			return nil, status.Error(codes.InvalidArgument, "the first message of a session must be a hello")
		}
		return h, nil
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %v", timeout)
	}
}

// resumable reports whether h resumes a session of id that still exists.
func (b *Bridge) resumable(id Identity, h *pb.Hello) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions[h.GetSessionId()]
	return s != nil && s.identity == id.Name
}

// checkHello validates a hello and returns the queues to serve. Every queue
// asked for must be allowed; a worker is refused rather than silently given
// fewer queues than it expects. A resume is the exception: the session
// keeps what the rules left it (see recheckSessions), and a queue taken
// away since does not lock the worker out.
func (b *Bridge) checkHello(id Identity, h *pb.Hello, resume bool) ([]string, error) {
	if capacity(h) == 0 {
		return nil, status.Error(codes.InvalidArgument, "hello: capacity (or slots) must be at least 1")
	}
	if int(capacity(h)) > b.cfg.MaxSlots {
		return nil, status.Errorf(codes.InvalidArgument, "hello: capacity of %d slots is more than the bridge allows (%d)", capacity(h), b.cfg.MaxSlots)
	}
	if h.GetSlots() > capacity(h) {
		return nil, status.Errorf(codes.InvalidArgument, "hello: %d free slots is more than the capacity of %d", h.GetSlots(), capacity(h))
	}
	if len(h.GetIdentifier()) > 256 {
		return nil, status.Error(codes.InvalidArgument, "hello: identifier longer than 256 bytes")
	}
	if err := gearmanName("identifier", h.GetIdentifier()); err != nil {
		return nil, err
	}
	if id := h.GetIdentifier(); id != "" {
		// The identifier is the session's client id at gearmand and names
		// its status queue: one gearmand cannot take would be refused on
		// every connect, forever.
		if err := gearman.ValidClientID(id); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "hello: identifier %q cannot be a Gearman client id: %v", id, err)
		}
		if err := gearman.ValidFunctionName(modgearman.StatusQueuePrefix + id); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "hello: identifier %q cannot name a status queue: %v", id, err)
		}
	}
	if len(h.GetQueues()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "hello: no queues asked for")
	}
	var queues []string
	for _, q := range h.GetQueues() {
		if q == "" || len(q) > maxQueueName {
			return nil, status.Errorf(codes.InvalidArgument, "hello: queue name %q is empty or too long", q)
		}
		if err := gearmanName("queue name", q); err != nil {
			return nil, err
		}
		if !b.authz().AllowQueue(id.Name, q) {
			if resume {
				continue
			}
			return nil, status.Errorf(codes.PermissionDenied, "identity %q is not allowed to work on queue %q", id.Name, q)
		}
		if !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	return queues, nil
}

type adminService struct {
	pb.UnimplementedAdminServiceServer
	b *Bridge
}

// GetStatus reports the sessions and counters of the bridge.
func (a *adminService) GetStatus(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	if _, err := a.b.authorize(ctx, RoleAdmin); err != nil {
		return nil, err
	}
	b := a.b
	b.mu.Lock()
	sessions := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		sessions = append(sessions, s)
	}
	b.mu.Unlock()
	resp := &pb.GetStatusResponse{
		Version: b.version,
		Uptime:  durationpb.New(time.Since(b.started)),
	}
	var inflight, done uint64
	for _, s := range sessions {
		st := s.status()
		inflight += uint64(st.GetInFlight())
		done += st.GetJobsDone()
		resp.Sessions = append(resp.Sessions, st)
	}
	slices.SortFunc(resp.Sessions, func(x, y *pb.SessionStatus) int {
		return strings.Compare(x.GetIdentifier()+x.GetSessionId(), y.GetIdentifier()+y.GetSessionId())
	})
	servers, unreachable := 0, 0
	if b.up != nil {
		b.up.mu.Lock()
		servers, unreachable = b.up.servers, len(b.up.down)
		b.up.mu.Unlock()
	}
	m := b.m
	resp.Counters = []*pb.Counter{
		{Name: "sessions", Value: uint64(len(sessions))},
		{Name: "jobs_in_flight", Value: inflight},
		{Name: "jobs_done", Value: done},
		// The totals since start behind the Prometheus series, for
		// `gearbridge check --bridge`, which compares them between runs.
		{Name: "jobs_undecodable_total", Value: counterSum(m.invalidJobs.WithLabelValues("undecodable"))},
		{Name: "jobs_invalid_total", Value: counterSum(m.invalidJobs.WithLabelValues("invalid"))},
		{Name: "jobs_refused_total", Value: counterSum(m.refusedJobs)},
		{Name: "results_refused_total", Value: counterSum(m.refused)},
		{Name: "sessions_refused_total", Value: counterSum(m.sessionsRefused)},
		{Name: "gearmand_servers", Value: uint64(servers)},
		{Name: "gearmand_unreachable", Value: uint64(unreachable)},
	}
	return resp, nil
}

// counterSum adds up the values of every counter c collects.
func counterSum(c prometheus.Collector) uint64 {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil && d.GetCounter() != nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return uint64(sum)
}

// gearmanName refuses control characters in a name that becomes part of a
// Gearman function name: NUL separates the binary protocol's arguments, and
// tabs and line ends break the admin protocol's lines. Spaces are fine
// (host group names may have them).
func gearmanName(what, name string) error {
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return status.Errorf(codes.InvalidArgument, "hello: %s %q contains the control character %U", what, name, r)
		}
	}
	return nil
}

// capacity is the session's total slots: Hello.capacity, or the free slots
// of a worker that does not send it.
func capacity(h *pb.Hello) uint32 {
	if c := h.GetCapacity(); c > 0 {
		return c
	}
	return h.GetSlots()
}
