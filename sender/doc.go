// Package sender delivers passive check results, the job of classic
// send_gearman and send_multi: it parses their input formats, sends results
// to the bridge over gRPC (ResultService) or straight to gearmand, and
// spools to disk whatever cannot be delivered, so that a result it has
// accepted is never lost.
//
// The pieces are independent: [ParseLine] and [ParseMulti] turn input into
// [Result] values; a [Transport] ([GRPCTransport], [GearmanTransport])
// delivers a batch and reports the fate of every result; a [Spool] keeps
// results durably on disk in FIFO order; [Sender] ties them together for
// one invocation of `gearbridge send`, and [Daemon] runs continuously,
// draining the spool and taking results from a Unix socket and a stream.
//
// Delivery from the spool is at-least-once: an entry is deleted only after
// the bridge (or gearmand) acknowledged every result in it, so a crash
// between the acknowledgement and the deletion delivers those results
// again. Nothing is dropped silently: results refused for good and entries
// that expired are moved to the spool's dead/ directory, counted and
// logged.
package sender
