package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// maxBatch bounds one SubmitResults call.
const maxBatch = 10000

// resultService takes passive results from senders.
type resultService struct {
	pb.UnimplementedResultServiceServer
	b *Bridge
}

// SubmitResult submits one result; a refusal is an error status.
func (r *resultService) SubmitResult(ctx context.Context, req *pb.SubmitResultRequest) (*pb.SubmitResultResponse, error) {
	id, err := r.b.authorizeSender(ctx)
	if err != nil {
		return nil, err
	}
	st := r.b.submitPassive(ctx, id, []*pb.PassiveResult{req.GetResult()})[0]
	switch {
	case st.GetAccepted():
		return &pb.SubmitResultResponse{}, nil
	case st.GetRetry():
		return nil, status.Error(codes.Unavailable, st.GetReason())
	case strings.HasPrefix(st.GetReason(), "not allowed"):
		return nil, status.Error(codes.PermissionDenied, st.GetReason())
	}
	return nil, status.Error(codes.InvalidArgument, st.GetReason())
}

// SubmitResults submits a batch; each result is accepted or refused alone.
func (r *resultService) SubmitResults(ctx context.Context, req *pb.SubmitResultsRequest) (*pb.SubmitResultsResponse, error) {
	id, err := r.b.authorizeSender(ctx)
	if err != nil {
		return nil, err
	}
	if n := len(req.GetResults()); n > maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d results; at most %d per call", n, maxBatch)
	}
	resp := &pb.SubmitResultsResponse{Statuses: r.b.submitPassive(ctx, id, req.GetResults())}
	for _, st := range resp.Statuses {
		if st.GetAccepted() {
			resp.Accepted++
		} else {
			resp.Refused++
		}
	}
	return resp, nil
}

// authorizeSender admits sender certificates, and worker certificates when
// the bridge is configured to let workers send passive results and a sender
// rule names them (a site whose worker also forwards results).
func (b *Bridge) authorizeSender(ctx context.Context) (Identity, error) {
	if b.cfg.WorkersMaySend {
		if id, err := b.identityFrom(ctx); err == nil && id.Role == RoleWorker && b.authz().HasRole(id.Name, RoleSender) {
			return id, nil
		}
	}
	return b.authorize(ctx, RoleSender)
}

// submitPassive checks, encodes and submits results together (pipelined
// in shared writes) and reports each one's fate. A result is
// accepted only once gearmand has taken it.
func (b *Bridge) submitPassive(ctx context.Context, id Identity, results []*pb.PassiveResult) []*pb.ResultStatus {
	out := make([]*pb.ResultStatus, len(results))
	now := time.Now()
	var batch []QueuedResult
	var sts []*pb.ResultStatus
	for i, pr := range results {
		st := &pb.ResultStatus{Index: uint32(i)}
		out[i] = st
		res, reason := b.passiveResult(id, pr, now)
		if reason != "" {
			st.Reason = reason
			label, _, _ := strings.Cut(reason, ":")
			b.m.refused.WithLabelValues(strings.ReplaceAll(label, " ", "_")).Inc()
			continue
		}
		batch = append(batch, QueuedResult{Queue: b.cfg.ResultQueue, Payload: b.codec.Encode(res.MarshalPassive())})
		sts = append(sts, st)
	}
	var accepted []QueuedResult
	for i, err := range submitResults(ctx, b.results, batch) {
		st := sts[i]
		if err != nil {
			b.m.submitErrors.Inc()
			if gearman.Permanent(err) {
				st.Reason = "refused by gearmand: " + err.Error()
				b.m.refused.WithLabelValues("gearmand_refused").Inc()
				continue
			}
			st.Reason, st.Retry = "gearmand unavailable: "+err.Error(), true
			b.m.refused.WithLabelValues("unavailable").Inc()
			continue
		}
		st.Accepted = true
		b.m.passiveAccepted.Inc()
		accepted = append(accepted, batch[i])
	}
	b.copyToDups(ctx, accepted)
	return out
}

// copyToDups gives every dupserver a copy of results that are already on
// the primary result queue, all in one pipelined submit. A copy is best
// effort, as with classic dupservers: a failure is logged (once per
// dupserver and interval) and counted, and the result stands.
func (b *Bridge) copyToDups(ctx context.Context, rs []QueuedResult) {
	if len(rs) == 0 {
		return
	}
	for i, d := range b.dups {
		for k, err := range d.SubmitAll(ctx, backgroundJobs(rs)) {
			if err != nil {
				b.m.dupErrors.Inc()
				b.rl.Warn(b.log, "dupserver "+b.cfg.DupServers[i], "dupserver did not take a result copy", "dupserver", b.cfg.DupServers[i], "queue", rs[k].Queue, "err", err)
			}
		}
	}
}

// passiveResult validates one result and builds its classic form (wire
// contract §2.7). It returns a reason when the result is refused.
func (b *Bridge) passiveResult(id Identity, pr *pb.PassiveResult, now time.Time) (modgearman.Result, string) {
	host, service := string(pr.GetHostName()), string(pr.GetServiceDescription())
	switch {
	case pr == nil:
		return modgearman.Result{}, "invalid: empty result"
	case host == "" || strings.ContainsAny(host, "\n\x00"):
		return modgearman.Result{}, "invalid: host_name is empty or contains a newline or NUL"
	case strings.ContainsAny(service, "\n\x00"):
		return modgearman.Result{}, "invalid: service_description contains a newline or NUL"
	case pr.GetReturnCode() < 0 || pr.GetReturnCode() > 3:
		return modgearman.Result{}, fmt.Sprintf("invalid: return code %d is not 0..3", pr.GetReturnCode())
	case len(pr.GetOutput()) == 0:
		return modgearman.Result{}, "invalid: output is empty"
	case !b.authz().AllowHost(id.Name, host):
		return modgearman.Result{}, fmt.Sprintf("not allowed: identity %q may not send results for host %q", id.Name, host)
	}
	output := string(pr.GetOutput())
	if p := pr.GetPerfData(); len(p) > 0 {
		output += "|" + string(p)
	}
	if l := pr.GetLongOutput(); len(l) > 0 {
		output += "\n" + string(l)
	}
	start, finish := now, now
	if pr.GetStartTime() != nil {
		start = pr.GetStartTime().AsTime()
	}
	if pr.GetFinishTime() != nil {
		finish = pr.GetFinishTime().AsTime()
	}
	typ := modgearman.ResultPassive
	if pr.GetCheckType() == pb.CheckType_CHECK_TYPE_ACTIVE {
		typ = modgearman.ResultActive
	}
	return modgearman.Result{
		Type:               typ,
		HostName:           host,
		ServiceDescription: service,
		StartTime:          start,
		FinishTime:         finish,
		Latency:            pr.GetLatency().AsDuration(),
		HasLatency:         true,
		ReturnCode:         int(pr.GetReturnCode()),
		ExitedOK:           true,
		Source:             "gearbridge sender @ " + id.Name,
		Output:             output,
	}, ""
}
