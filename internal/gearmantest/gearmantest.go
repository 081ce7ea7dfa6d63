// Package gearmantest runs a real gearmand for tests, in the manner of
// net/http/httptest: Start picks a free loopback port, starts the server
// with its log in the test's temporary directory, waits until it answers,
// and stops it when the test ends.
//
// The package deliberately speaks the admin protocol on its own instead of
// importing package gearman, so that gearman's internal tests can use it.
package gearmantest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the harness. gearmand binds and answers within milliseconds;
// the generous bounds absorb a machine loaded by parallel -race tests.
const (
	startTimeout   = 10 * time.Second // one start attempt on a fresh port
	restartTimeout = 30 * time.Second // gearmand retries a busy bind for ~20s
	stopGrace      = 3 * time.Second  // SIGTERM before SIGKILL
	installTimeout = 5 * time.Minute
	startAttempts  = 5
)

// installHint is printed when gearmand is missing and cannot be installed.
const installHint = `
************************************************************************
*  gearmand NOT FOUND: skipping tests that need a real Gearman server.  *
*  Install it (Debian/Ubuntu):  sudo apt-get install gearman-job-server *
*  (and gearman-tools for the gearman/gearadmin CLIs), then re-run.     *
************************************************************************`

// Option changes how Start runs gearmand.
type Option func(*config)

type config struct {
	roundRobin bool
	verbose    string
	args       []string
}

// WithoutRoundRobin starts gearmand without -R, i.e. with the 1.1.x default
// of assigning jobs in the order a worker registered its functions.
func WithoutRoundRobin() Option { return func(c *config) { c.roundRobin = false } }

// WithVerbose sets gearmand's --verbose level (default WARNING).
func WithVerbose(level string) Option { return func(c *config) { c.verbose = level } }

// WithArgs appends extra gearmand arguments.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is a running gearmand.
type Server struct {
	bin     string
	cfg     config
	dir     string
	logPath string

	mu   sync.Mutex
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Start starts gearmand on a free 127.0.0.1 port and registers its Stop
// with t.Cleanup. By default gearmand runs with -R (--round-robin), so that
// a worker with many functions is not starved by registration order. When
// gearmand is not installed, Start installs it with apt-get if running as
// root and otherwise skips the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{roundRobin: true, verbose: "WARNING"}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{bin: findGearmand(t), cfg: cfg, dir: t.TempDir()}
	s.logPath = filepath.Join(s.dir, "gearmand.log")
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("gearmand log (%s):\n%s", s.logPath, tail(s.logPath, 40))
		}
	})
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("gearmantest: pick a port: %v", err)
		}
		if err := s.start(port, startTimeout); err != nil {
			// Most likely another process took the port between our probe
			// and gearmand's bind; gearmand then retries the bind for
			// ~20s instead of exiting. Try another port.
			errs = append(errs, err)
			s.Stop()
			continue
		}
		return s
	}
	t.Fatalf("gearmantest: start gearmand: %v", errors.Join(errs...))
	return nil
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the TCP port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// LogPath returns the path of gearmand's log file.
func (s *Server) LogPath() string { return s.logPath }

// Restart stops gearmand and starts it again on the same port, waiting
// until it answers. Queued jobs are lost (builtin queue).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(s.Port(), restartTimeout); err != nil {
		t.Fatalf("gearmantest: restart gearmand: %v", err)
	}
}

// Stop stops gearmand (SIGTERM, then SIGKILL after a grace period) and
// waits for it to exit. It may be called more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(stopGrace):
	}
	cmd.Process.Kill()
	<-done
}

// Signal sends sig to the running gearmand (e.g. SIGSTOP to make it hang
// with its sockets open, SIGCONT to resume it).
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("gearmantest: gearmand is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// Kill stops gearmand with SIGKILL, like a crash, and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// start runs gearmand on port and waits until it answers getpid with its
// own pid.
func (s *Server) start(port int, timeout time.Duration) error {
	args := []string{
		"--listen=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--log-file=" + s.logPath,
		"--pid-file=" + filepath.Join(s.dir, "gearmand.pid"),
		"--verbose=" + s.cfg.verbose,
	}
	if s.cfg.roundRobin {
		args = append(args, "--round-robin")
	}
	args = append(args, s.cfg.args...)
	out, err := os.OpenFile(filepath.Join(s.dir, "gearmand.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.port, s.cmd, s.done = port, cmd, done
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var lastErr error
	for {
		select {
		case <-done:
			return fmt.Errorf("gearmand exited at start (%v); output: %s", cmd.ProcessState, tail(filepath.Join(s.dir, "gearmand.out"), 10))
		default:
		}
		pid, err := getPID(ctx, addr)
		if err == nil && pid == cmd.Process.Pid {
			return nil
		}
		if err == nil {
			// Another server holds the port; gearmand would retry its
			// bind for ~20s. Give up on this port at once.
			return fmt.Errorf("port %d answered by pid %d, not ours (%d)", port, pid, cmd.Process.Pid)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("gearmand on port %d not ready after %v: %w", port, timeout, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// getPID asks the admin protocol for the server's pid.
func getPID(ctx context.Context, addr string) (int, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := c.Write([]byte("getpid\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "OK "))
	if err != nil {
		return 0, fmt.Errorf("getpid reply %q: %w", line, err)
	}
	return pid, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findGearmand returns the gearmand binary, installing it when possible.
func findGearmand(t testing.TB) string {
	t.Helper()
	if p := lookGearmand(); p != "" {
		return p
	}
	if os.Geteuid() != 0 {
		t.Skip(installHint)
	}
	if err := install(); err != nil {
		t.Fatalf("gearmantest: gearmand is missing and installing it failed: %v%s", err, installHint)
	}
	p := lookGearmand()
	if p == "" {
		t.Fatalf("gearmantest: gearman-job-server installed but no gearmand found%s", installHint)
	}
	return p
}

func lookGearmand() string {
	if p, err := exec.LookPath("gearmand"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/gearmand", "/usr/local/sbin/gearmand"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// install runs apt-get install gearman-job-server, once per machine at a
// time (test packages run in parallel processes; dpkg allows one).
func install() error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "gearmantest-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if lookGearmand() != "" {
		return nil // another test process installed it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	aptGet := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail2(out, 20))
		}
		return nil
	}
	pkgs := []string{"install", "-y", "--no-install-recommends", "gearman-job-server", "gearman-tools"}
	if err := aptGet(pkgs...); err == nil {
		return nil
	}
	if err := aptGet("update"); err != nil {
		return err
	}
	return aptGet(pkgs...)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail2(b, n)
}

func tail2(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
