package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testMainEnv makes the test binary run main instead of the tests, so that
// tests can start the program as a real process.
const testMainEnv = "GEARBRIDGE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(testMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// closedPort returns a loopback address nobody listens on: the worker
// keeps retrying it and logging so.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// gearbridgeProcess returns the command that runs this program with args.
func gearbridgeProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), testMainEnv+"=1")
	return cmd
}

// classicProcessArgs are the arguments of a classic worker that takes its
// jobs from a gearmand that is not there.
func classicProcessArgs(t *testing.T, extra ...string) []string {
	return append([]string{"worker", "--transport=gearman", "--services", "--encryption=no", "--server=" + closedPort(t)}, extra...)
}

// waitUntil polls cond until it holds or ten seconds have passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(data), "\n") {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, err == nil
}

func TestWorkerPidFileProcess(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "worker.pid")
	cmd := gearbridgeProcess(t, classicProcessArgs(t, "--pidfile", pidFile, "--logfile="+filepath.Join(dir, "w.log"))...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitUntil(t, "the pid file", func() bool {
		pid, ok := readPid(pidFile)
		return ok && pid == cmd.Process.Pid
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file after exit: %v", err)
	}
}

func TestWorkerLogReopenOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "worker.log")
	cmd := gearbridgeProcess(t, classicProcessArgs(t, "--logfile", logFile, "--logmode=file", "--spawn-rate=3")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	contains := func(path, s string) bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), s)
	}
	waitUntil(t, "the start-up line in the log file", func() bool {
		return contains(logFile, "classic options accepted but not used") && contains(logFile, "spawn-rate: goroutines, not processes")
	})
	rotated := logFile + ".1"
	if err := os.Rename(logFile, rotated); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a new log file at the old path", func() bool { return contains(logFile, "reopened log file") })
	if contains(rotated, "reopened log file") {
		t.Error("the rotated file got lines after SIGHUP")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v", err)
	}
}

func TestWorkerDaemonProcess(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "worker.pid")
	logFile := filepath.Join(dir, "worker.log")
	parent := gearbridgeProcess(t, classicProcessArgs(t, "-d", "--pidfile="+pidFile, "--logfile="+logFile)...)
	if out, err := parent.CombinedOutput(); err != nil {
		t.Fatalf("parent: %v\n%s", err, out)
	}
	var pid int
	waitUntil(t, "the daemon's pid file", func() bool {
		var ok bool
		pid, ok = readPid(pidFile)
		return ok
	})
	alive := func() bool { return syscall.Kill(pid, 0) == nil }
	t.Cleanup(func() {
		if alive() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if pid == parent.Process.Pid || !alive() {
		t.Fatalf("daemon pid %d, parent %d, alive %v", pid, parent.Process.Pid, alive())
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("daemon process group %d, %v; want its own session %d", pgid, err, pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the daemon to remove its pid file", func() bool {
		_, err := os.Stat(pidFile)
		return os.IsNotExist(err)
	})
}

// TestModGearmanWorkerPersonality: invoked as mod_gearman_worker, the
// binary is a classic worker taking jobs from gearmand.
func TestModGearmanWorkerPersonality(t *testing.T) {
	code, _, errOut := runCmd(t, "/usr/bin/mod_gearman_worker", "--services", "--server=localhost")
	if code != exitUsage || !strings.Contains(errOut, "--transport=gearman: encryption is on but no key") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
