// Package e2e runs gearbridge end to end through real processes: the real
// gearmand, the gearbridge binary as bridge and workers, real plugins, and
// real TLS. The tests push jobs exactly as the classic NEB module formats
// them and read the results from the result queue like its result thread.
package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

const testKey = "e2e_test_key_0123"

var gbBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gearbridge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gbBin = filepath.Join(dir, "gearbridge")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	build := exec.Command("go", "build", "-race", "-o", gbBin, "./cmd/gearbridge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gearbridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is gearmand, a CA, and the gearbridge processes of one test.
type cluster struct {
	t      *testing.T
	dir    string
	gm     *gearmantest.Server
	ca     string
	authz  string
	codec  *modgearman.Codec
	client *gearman.Client

	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterWith(t)
}

// newClusterWith is newCluster with gearmand started with opts.
func newClusterWith(t *testing.T, opts ...gearmantest.Option) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), gm: gearmantest.Start(t, opts...)}
	c.ca = filepath.Join(c.dir, "ca")
	c.gb("certs", "init", "--dir", c.ca)
	c.gb("certs", "issue", "--dir", c.ca, "--role", "bridge", "--name", "bridge", "--san", "localhost,127.0.0.1")
	c.authz = filepath.Join(c.dir, "authz.yaml")
	writeFile(t, c.authz, "rules:\n  - {identity: \"w*\", role: worker, queues: [\"service\", \"host\", \"eventhandler\", \"hostgroup_*\"]}\n  - {identity: ops, role: admin}\n", 0o644)
	codec, err := modgearman.NewCodec(testKey, true)
	if err != nil {
		t.Fatal(err)
	}
	c.codec = codec
	c.client = gearman.NewClient([]string{c.gm.Addr()}, gearman.ClientOptions{WaitForReady: true})
	t.Cleanup(func() {
		c.stopAll()
		_ = c.client.Close()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// gb runs a short gearbridge command and fails the test if it fails.
func (c *cluster) gb(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gbBin, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("gearbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(gbBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// startBridge starts a bridge and returns its process and address. listen
// is "127.0.0.1:0" for a fresh port.
func (c *cluster) startBridge(name, listen string, extra ...string) (*proc, string) {
	c.t.Helper()
	args := append([]string{"bridge", "--listen", listen, "--server", c.gm.Addr(), "--key", testKey,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, "bridge.crt"),
		"--tls-key", filepath.Join(c.ca, "bridge.key"), "--authz", c.authz, "--log-level", "debug"}, extra...)
	p := c.start(name, args...)
	addr := c.waitLog(p, `bridge serving.* addr=(\S+)`, 20*time.Second)
	return p, addr
}

// startWorker issues a certificate for name (once) and starts a worker.
func (c *cluster) startWorker(name, bridgeAddr string, extra ...string) *proc {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.ca, name+".crt")); err != nil {
		c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", name)
	}
	args := append([]string{"worker", "--bridge", bridgeAddr, "--identifier", name,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, name+".crt"),
		"--tls-key", filepath.Join(c.ca, name+".key"), "--log-level", "debug"}, extra...)
	return c.start(name, args...)
}

func (c *cluster) waitLog(p *proc, re string, timeout time.Duration) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if m := rx.FindSubmatch(b); m != nil {
			if len(m) > 1 {
				return string(m[1])
			}
			return string(m[0])
		}
		select {
		case <-p.done:
			c.t.Fatalf("%s exited before logging %q:\n%s", p.name, re, b)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not log %q within %v:\n%s", p.name, re, timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig to the process group and waits (SIGKILL after 15 s).
func (p *proc) stop(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(syscall.SIGTERM)
	}
}

func (c *cluster) dumpLogs() {
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(string(b), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("---- %s log (last lines) ----\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// submit pushes one job as the classic NEB does: C-style AES, background,
// LOW priority for service checks, NORMAL for the rest.
func (c *cluster) submit(ctx context.Context, queue string, j modgearman.Job) {
	c.t.Helper()
	prio := gearman.PriorityNormal
	if j.Type == modgearman.JobService {
		prio = gearman.PriorityLow
	}
	if _, err := c.client.Submit(ctx, queue, "", c.codec.Encode(j.Marshal()), prio, true); err != nil {
		c.t.Fatalf("submit: %v", err)
	}
}

// result is one result read from the result queue, with its raw payload.
type result struct {
	modgearman.Result
	raw []byte
}

// collect reads results from queue until n have arrived or timeout passes.
func (c *cluster) collect(queue string, n int, timeout time.Duration) []result {
	c.t.Helper()
	return c.collectUntil(queue, timeout, func(got []result) bool { return len(got) >= n })
}

// collectHosts reads results until every host in want has one (duplicates,
// possible after a crash, are returned too).
func (c *cluster) collectHosts(queue string, want map[string]bool, timeout time.Duration) []result {
	c.t.Helper()
	missing := maps.Clone(want)
	return c.collectUntil(queue, timeout, func(got []result) bool {
		delete(missing, got[len(got)-1].HostName)
		return len(missing) == 0
	})
}

// collectUntil reads results from queue until done says so; it fails the
// test when timeout passes first.
func (c *cluster) collectUntil(queue string, timeout time.Duration, done func([]result) bool) []result {
	c.t.Helper()
	return c.collectFrom(c.gm.Addr(), queue, timeout, done)
}

// collectFrom is collectUntil on the gearmand at addr.
func (c *cluster) collectFrom(addr, queue string, timeout time.Duration, done func([]result) bool) []result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, addr, gearman.WorkerOptions{ClientID: "e2e-results"})
	if err != nil {
		c.t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(queue); err != nil {
		c.t.Fatal(err)
	}
	var out []result
	for len(out) == 0 || !done(out) {
		job, err := wc.Grab(ctx)
		if err != nil {
			c.t.Fatalf("got %d results, not all that were expected: %v", len(out), err)
		}
		plain, err := c.codec.Decode(job.Data)
		if err != nil {
			c.t.Fatalf("decode result: %v", err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			c.t.Fatalf("parse result: %v\n%q", err, plain)
		}
		if err := wc.Complete(job.Handle, nil); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, result{Result: r, raw: job.Data})
	}
	return out
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// tcpProxy forwards connections to target and can cut them all.
type tcpProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{lis: lis, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = lis.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.lis.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); copyClose(out, in) }()
		go func() { defer p.wg.Done(); copyClose(in, out) }()
	}
}

func copyClose(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every proxied connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// setDown refuses (down=true) or accepts new connections.
func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}
