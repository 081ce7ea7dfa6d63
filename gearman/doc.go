// Package gearman speaks the Gearman protocol to the C job server gearmand:
// a pipelined client, a worker connection, and the text admin protocol.
// It knows nothing about what the jobs carry.
//
// # Layers
//
//   - packet.go: the binary framing (12-byte header, NUL-separated
//     arguments), PacketReader and PacketWriter.
//   - Client: submits jobs over one connection to the first reachable of
//     several servers. Many goroutines may submit at once; requests are
//     written in order, batched into few writes, and replies are matched in
//     FIFO order, with at most ClientOptions.Window requests in flight.
//     When the connection dies every request in flight returns an error
//     wrapping ErrConnectionLost, and the client reconnects in the
//     background (next server first, then backoff with jitter).
//   - WorkerConn: one worker connection. Grab asks for exactly one job
//     (GRAB_JOB_UNIQ, then PRE_SLEEP and NOOP when there is none); results
//     may be sent from any goroutine while another Grab is pending. Worker
//     runs a Handler on several such connections and reconnects.
//   - Admin: "status", "prioritystatus", "workers", "version", "getpid" and
//     "maxqueue", with pure parsers (ParseStatus, ParsePriorityStatus,
//     ParseWorkers).
//
// # Errors and names
//
// Permanent is the one classifier of errors: it tells a request that can
// never succeed (ErrInvalidArgument, most ERROR replies of gearmand) from a
// failure that may pass (lost connections, timeouts, a full queue), so
// that callers retry only the latter. ValidFunctionName and ValidClientID
// hold queue names and worker IDs to what gearmand, libgearman and the text
// admin protocol all carry unchanged.
//
// # gearmand facts this package relies on (1.1.20, Debian 12)
//
//   - Same function and unique key while a job is queued or running yields
//     the same handle and drops the second payload. Use an empty or fresh
//     unique key when every submit must become a job.
//   - A submit beyond a function's maxqueue is answered with ERROR
//     QUEUE_ERROR ("Job queue is full"); Client returns it at once as a
//     *ServerError with Code CodeQueueFull.
//   - CAN_DO_TIMEOUT can hang gearmand up to 1.1.22, so this package never
//     sends it; enforce job timeouts in the worker.
//   - Without -R (--round-robin), gearmand 1.1.x serves a worker
//     connection's functions in a fixed order of registration: it hands
//     out every queued job of one function before any job of the next (in
//     our probe the function registered last came first), so a busy
//     function starves the others on that connection. With -R the
//     functions alternate (TestRoundRobinAvoidsStarvation shows both).
//     Start gearmand with -R (the test harness internal/gearmantest does),
//     or set WorkerOptions.ConnectionPerFunction to register each function
//     on its own connection.
//   - A worker connection that closes with grabbed, unfinished jobs gets
//     them requeued. Queued jobs of the builtin queue are lost when gearmand
//     restarts.
//   - SET_CLIENT_ID is never answered or refused: gearmand keeps the first
//     127 bytes up to any NUL and prints the ID raw in "workers"
//     (ValidClientID has the details). It takes function names with
//     spaces, control bytes or over 512 bytes, which libgearman refuses
//     and "status" garbles.
//   - Debian's gearmand has no TLS (it silently ignores --ssl). The Dialer
//     options exist so that a TLS-capable gearmand can be used later.
package gearman
