package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// daemonChildEnv marks the process a --daemon worker started, so that it
// runs in the foreground of its own session instead of starting another.
const daemonChildEnv = "GEARBRIDGE_DAEMON_CHILD"

// isDaemonChild reports whether this process is the detached worker.
func isDaemonChild() bool { return os.Getenv(daemonChildEnv) == "1" }

// startDaemon starts this program again, with the same arguments, as the
// detached worker: in a new session, with standard input from /dev/null
// and standard output and error to logFile (appended), or to /dev/null
// when there is none. It returns once the child has started; the caller
// then exits 0, as the classic worker's parent does. Options were checked
// before, so that mistakes are reported on the terminal.
func startDaemon(logFile string) (pid int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("daemon: find own executable: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("daemon: %w", err)
	}
	defer null.Close()
	out := null
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return 0, fmt.Errorf("daemon: open log file: %w", err)
		}
		defer f.Close()
		out = f
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        os.Args, // argv[0] too: it selects the personality
		Env:         append(os.Environ(), daemonChildEnv+"=1"),
		Stdin:       null,
		Stdout:      out,
		Stderr:      out,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("daemon: start: %w", err)
	}
	pid = cmd.Process.Pid
	// The child is not waited for: it outlives this process.
	_ = cmd.Process.Release()
	return pid, nil
}
