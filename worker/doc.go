// Package worker is gearbridge's remote worker: it dials out to a bridge
// over gRPC, announces the queues it serves and how many jobs it can run,
// runs the Mod-Gearman check jobs the bridge hands it with the plugin
// package, and streams their results back.
//
// # Session protocol
//
// A [Worker] holds one session at a time on one of the configured bridges
// (WorkerService.Work). It opens the stream with a Hello carrying its
// identifier, queues and initial credit: the number of slots free at that
// moment. Afterwards it sends Credit whenever slots free up, so the bridge
// never hands out more jobs than the worker can start. Load limits hold
// credit back while the system load is above them. At most Config.Slots
// plugins ever run: a job that arrives while every slot is busy (one the
// bridge sends again after a resume, say) waits on the worker for a slot.
//
// Every result is kept in an outbox until the bridge acknowledges it (Ack).
// When the stream breaks, the worker reconnects with jittered exponential
// backoff, asks to resume its session and lists the jobs it still holds
// (running, or finished and unacknowledged); after a resumed Welcome it sends
// the unacknowledged results again. If the bridge no longer knows the
// session, gearmand has requeued its jobs: the worker stops their plugins and
// drops their results, which would otherwise be delivered twice.
//
// A bridge that refuses the worker for good (not authorized, a bad hello, a
// certificate it does not accept, or a bridge certificate the worker does
// not accept) is tried less and less often, up to once a minute
// ([Config.RefusedBackoffMax]); the first refusal is logged, then a summary
// every few minutes, and a gauge shows the state until a session starts.
//
// A Cancel withdraws a job the bridge has already answered (for example with
// a timeout result): its plugin is killed and no result is sent. A Drain from
// the bridge means the bridge is going away: the worker takes no new jobs,
// finishes the running ones, waits for their acknowledgements and then moves
// to the next bridge. When the context given to [Worker.Run] ends, the worker
// drains itself the same way, bounded by [Config.DrainTimeout], and returns.
//
// # Straight on gearmand
//
// A [GearmanWorker] (--transport=gearman) is a classic worker instead: it
// holds the key and takes jobs from gearmand itself, one GRAB per free slot
// across all servers, so nothing is grabbed ahead of need. A check's result
// goes to the job's result queue before the job is completed; a job cut off
// by the drain timeout is not completed and gearmand requeues it when the
// connection closes. A job that can never succeed (it does not decode, or
// names a result queue gearmand cannot take, or gearmand refuses its result
// for good) is failed instead, so that it does not hang the next worker.
// The status queue worker_<identifier> has a connection of its own per
// server that needs no slot, so check_gearman's ping is answered while
// every slot is busy, as by the classic workers.
package worker
