// Package neb is the pure-Go half of the gearbridge broker module: it decides
// where a check goes, builds the Mod-Gearman job, submits it asynchronously to
// gearmand and takes check results off the result queue. It never touches the
// monitoring core: the cgo package cmd/gearbridge-neb copies what the core
// hands over into Go values, calls Module.Check from the core's main thread,
// and drains the results a Module delivers to its Sink, again on the main
// thread.
//
// # Never blocking the core
//
// Module.Check only routes and appends to a bounded, mutex-protected queue:
// it wakes no goroutine, because a scheduler wake-up from the core's thread
// costs several microseconds. A dispatcher collects the queue every
// millisecond and hands the jobs to a pool of submitters, which marshal,
// encrypt and submit them with a pipelined gearman.Client.
// While gearmand is unreachable, submissions wait in the queue for up to
// gearmand_down_hold and go out when it answers again (Health, shared
// across reloads, says whether it does). A check that waited longer, that
// finds the queue full, or that is still queued when the module stops is
// given back: a CheckResult with GiveBack set asks the core to clear
// is_executing and plan the next check, without a result, so that an
// outage of ours never changes an object's state. On cores that honour
// CANCEL at the INITIATE event (Naemon) a full queue answers CANCEL at once.
// A check submitted before a connection to gearmand died is given back at
// its deadline instead of getting the orphan result. Only a job gearmand
// refuses for good gets an explicit UNKNOWN result. Every case is counted
// in Stats.
//
// Notifications (Notify) go to the notification queue at high priority;
// one that cannot be queued is left to the core.
//
// # Results
//
// A gearman.Worker with result_workers connections per server serves the
// result queue. Workloads are decoded with modgearman.Codec.DecodeAny (so
// accept_clear_results is honoured), parsed with modgearman.ParseResult, and
// their latency is computed per modgearman-wire.md §4.2, clamped at zero and
// discarded when absurd. The raw payload "check" is answered with the
// classic status line (§2.10).
//
// # Perfdata
//
// Module.Perfdata sends the perfdata jobs of a processed check to the
// configured perfdata queues (§2.8), in overwrite mode with one unique id
// per object and queue, in append mode without.
package neb
