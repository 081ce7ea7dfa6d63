package modgearman

import (
	"fmt"
	"time"
)

// HasResult reports whether a job of type t is answered with a check result
// on its result queue: host and service checks are; event handlers and
// notifications are not.
func (t JobType) HasResult() bool { return t == JobHost || t == JobService }

// Answer is the active check result a worker sends for job j: host,
// service and core_start_time come from the job, exited_ok is set as the
// classic Go worker sets it (so the core shows the worker's own texts and
// return code for timeouts and signals, not its generic "did not exit
// properly"), and source names the worker.
func (j Job) Answer(returnCode int, output string, start, finish time.Time, source string) Result {
	return Result{
		Type:               ResultActive,
		HostName:           j.HostName,
		ServiceDescription: j.ServiceDescription,
		CoreStartTime:      j.CoreTime,
		StartTime:          start,
		FinishTime:         finish,
		ReturnCode:         returnCode,
		ExitedOK:           true,
		Source:             source,
		Output:             output,
	}
}

// WorkerStatus is a worker's plain-text answer on its status queue
// worker_<identifier> (specification §2.10, the Go worker's form): how many
// plugins it may run, how many run now, its version and the jobs it has
// done. check_gearman prints it.
func WorkerStatus(identifier string, workers, busy int, version string, done uint64) string {
	return fmt.Sprintf("%s has %d worker and is working on %d jobs. Version: %s|worker=%d;;;%d;%d jobs=%dc",
		identifier, workers, busy, version, workers, workers, workers, done)
}

// StatusQueuePrefix begins a worker's status queue, worker_<identifier>.
const StatusQueuePrefix = "worker_"
