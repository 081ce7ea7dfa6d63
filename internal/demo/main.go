// Command demo runs gearbridge's main job end to end on one machine, with
// real processes: gearmand, a bridge, and two remote workers that dial the
// bridge over mutual TLS. It pushes service and host checks into gearmand
// exactly as the classic NEB module formats them (C-style AES), prints each
// result as it comes back on check_results, then a summary. Then it runs
// the real Nagios 4.4 core with bin/gearbridge_neb_nagios4.so on the same
// gearmand, bridge and workers (nagios.go), prints service state changes
// from status.dat, and stops everything it started.
//
//	go run ./internal/demo -bin bin/gearbridge
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

const demoKey = "demo_key_change_me"

func main() {
	os.Exit(run())
}

func run() int {
	bin := flag.String("bin", "bin/gearbridge", "gearbridge binary")
	checks := flag.Int("checks", 200, "number of checks to push (half service, half host)")
	timeout := flag.Duration("timeout", 100*time.Second, "give up after this long")
	nagiosBin := flag.String("nagios", "", "nagios4 binary for the Nagios phase (default: $GEARBRIDGE_NAGIOS4 or scripts/install-nagios.sh)")
	nagiosFor := flag.Duration("nagios-for", 25*time.Second, "how long the Nagios phase watches status.dat (0 skips it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	d := &demo{bin: *bin, out: os.Stdout, nagiosBin: *nagiosBin, nagiosFor: *nagiosFor}
	err := d.run(ctx, *checks)
	d.stopAll()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		if d.dir != "" {
			fmt.Fprintf(os.Stderr, "demo: logs are kept in %s\n", d.dir)
		}
		return 1
	}
	_ = os.RemoveAll(d.dir)
	return 0
}

type demo struct {
	bin       string
	out       io.Writer
	dir       string
	nagiosBin string
	nagiosFor time.Duration
	mu        sync.Mutex
	procs     []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context, n int) error {
	bin, err := filepath.Abs(d.bin)
	if err != nil {
		return err
	}
	d.bin = bin
	if d.dir, err = os.MkdirTemp("", "gearbridge-demo-"); err != nil {
		return err
	}

	// 1. gearmand on a free port.
	gport, err := freePort()
	if err != nil {
		return err
	}
	gearmand, err := findGearmand()
	if err != nil {
		return err
	}
	gaddr := fmt.Sprintf("127.0.0.1:%d", gport)
	if _, err := d.start("gearmand", gearmand, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", gport), "-R",
		"--log-file="+filepath.Join(d.dir, "gearmand.log"), "--verbose=WARNING"); err != nil {
		return err
	}
	if err := waitTCP(ctx, gaddr); err != nil {
		return fmt.Errorf("gearmand did not start: %w", err)
	}
	d.say("==> gearmand listening on %s", gaddr)

	// 2. A private CA, a bridge certificate and one per worker.
	ca := filepath.Join(d.dir, "ca")
	if err := d.gb(ctx, "certs", "init", "--dir", ca); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"--role", "bridge", "--name", "bridge", "--san", "localhost,127.0.0.1"},
		{"--role", "worker", "--name", "site-a"},
		{"--role", "worker", "--name", "site-b"},
	} {
		if err := d.gb(ctx, append([]string{"certs", "issue", "--dir", ca}, c...)...); err != nil {
			return err
		}
	}
	authz := filepath.Join(d.dir, "authz.yaml")
	if err := os.WriteFile(authz, []byte("rules:\n  - {identity: \"site-*\", role: worker, queues: [\"service\", \"host\"]}\n"), 0o644); err != nil {
		return err
	}
	d.say("==> CA and certificates in %s (CA, bridge, site-a, site-b)", ca)

	// 3. The bridge.
	bp, err := d.start("bridge", d.bin, "bridge", "--listen", "127.0.0.1:0", "--server", gaddr, "--key", demoKey,
		"--tls-ca", filepath.Join(ca, "ca.crt"), "--tls-cert", filepath.Join(ca, "bridge.crt"), "--tls-key", filepath.Join(ca, "bridge.key"),
		"--authz", authz)
	if err != nil {
		return err
	}
	baddr, err := waitLogAddr(ctx, bp.log, `bridge serving.* addr=(\S+)`)
	if err != nil {
		return fmt.Errorf("bridge did not start: %w", err)
	}
	d.say("==> bridge listening on %s (mutual TLS 1.3)", baddr)

	// 4. Two remote workers; they dial out to the bridge and never see the key.
	plugin := filepath.Join(d.dir, "check_demo")
	if err := os.WriteFile(plugin, []byte(demoPlugin), 0o755); err != nil {
		return err
	}
	for _, w := range []string{"site-a", "site-b"} {
		if _, err := d.startEnv("worker-"+w, []string{"DEMO_SITE=" + w}, d.bin, "worker", "--bridge", baddr, "--identifier", w,
			"--tls-ca", filepath.Join(ca, "ca.crt"), "--tls-cert", filepath.Join(ca, w+".crt"), "--tls-key", filepath.Join(ca, w+".key"),
			"--services", "--hosts", "--max-workers", "8"); err != nil {
			return err
		}
	}
	d.say("==> workers site-a and site-b started (8 slots each)")

	// 5. Consume check_results, like the NEB's result thread.
	codec, err := modgearman.NewCodec(demoKey, true)
	if err != nil {
		return err
	}
	results := make(chan modgearman.Result, n)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	rerr := make(chan error, 1)
	go func() { rerr <- consume(rctx, gaddr, codec, results) }()

	// 6. Push the checks as the classic NEB does.
	client := gearman.NewClient([]string{gaddr}, gearman.ClientOptions{})
	defer client.Close()
	sent := map[string]time.Time{}
	began := time.Now()
	for i := range n {
		j := modgearman.Job{
			ResultQueue: "check_results",
			HostName:    fmt.Sprintf("web%02d", i/2),
			CoreTime:    time.Now(),
			Timeout:     30 * time.Second,
		}
		prio := gearman.PriorityNormal
		if i%2 == 0 {
			j.Type, j.TargetQueue = modgearman.JobService, "service"
			j.ServiceDescription = []string{"http", "disk", "load", "ssh"}[i/2%4]
			j.CommandLine = fmt.Sprintf("%s %s %s %d", plugin, j.HostName, j.ServiceDescription, i)
			prio = gearman.PriorityLow // service checks are LOW, like the classic module
		} else {
			j.Type, j.TargetQueue = modgearman.JobHost, "host"
			j.CommandLine = fmt.Sprintf("%s %s ping %d", plugin, j.HostName, i)
		}
		unique := modgearman.Uniq(j.HostName)
		if j.ServiceDescription != "" {
			unique = modgearman.Uniq(j.HostName, j.ServiceDescription)
		}
		sent[key(j.HostName, j.ServiceDescription)] = time.Now()
		if _, err := client.Submit(ctx, j.TargetQueue, unique, codec.Encode(j.Marshal()), prio, true); err != nil {
			return fmt.Errorf("submit check %d: %w", i, err)
		}
	}
	d.say("==> pushed %d checks (%d service, %d host) into gearmand\n", n, (n+1)/2, n/2)

	var lat []time.Duration
	byWorker := map[string]int{}
	for len(lat) < n {
		select {
		case r := <-results:
			k := key(r.HostName, r.ServiceDescription)
			t0, ok := sent[k]
			if !ok {
				return fmt.Errorf("unexpected result for %s", k)
			}
			delete(sent, k)
			l := time.Since(t0)
			lat = append(lat, l)
			w := strings.TrimPrefix(r.Source, "gearbridge worker @ ")
			byWorker[w]++
			what := r.HostName
			if r.ServiceDescription != "" {
				what += "/" + r.ServiceDescription
			}
			first, _, _ := strings.Cut(r.Output, "\n")
			d.say("[%3d] %-12s rc=%d %-7s %-52q via %s  %6.1fms", len(lat), what, r.ReturnCode, state(r.ReturnCode), first, w, float64(l.Microseconds())/1000)
		case err := <-rerr:
			return fmt.Errorf("result consumer: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d results arrived: %w", len(lat), n, ctx.Err())
		}
	}
	elapsed := time.Since(began)
	slices.Sort(lat)
	d.say("\n==> %d of %d checks came back through the bridge in %v: %.0f checks/s", len(lat), n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	d.say("    latency submit→result: p50 %v  p90 %v  p99 %v  max %v", pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])
	names := make([]string, 0, len(byWorker))
	for w := range byWorker {
		names = append(names, w)
	}
	slices.Sort(names)
	for _, w := range names {
		d.say("    %-8s ran %d checks", w, byWorker[w])
	}

	// 7. The real Nagios core with the broker module, on the same gearmand,
	// bridge and workers. The module reads check_results now.
	rcancel()
	select {
	case <-rerr:
	case <-time.After(5 * time.Second):
	}
	if d.nagiosFor <= 0 {
		return nil
	}
	return d.nagiosPhase(ctx, gaddr, d.nagiosBin, d.nagiosFor)
}

// consume reads results from check_results until ctx ends.
func consume(ctx context.Context, addr string, codec *modgearman.Codec, out chan<- modgearman.Result) error {
	wc, err := gearman.DialWorker(ctx, addr, gearman.WorkerOptions{ClientID: "demo-result-reader"})
	if err != nil {
		return err
	}
	defer wc.Close()
	if err := wc.CanDo("check_results"); err != nil {
		return err
	}
	for {
		job, err := wc.Grab(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		plain, err := codec.Decode(job.Data)
		if err != nil {
			return fmt.Errorf("decode result: %w", err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			return fmt.Errorf("parse result: %w", err)
		}
		if err := wc.Complete(job.Handle, nil); err != nil {
			return err
		}
		out <- r
	}
}

// demoPlugin answers like a monitoring plugin: one line, perfdata and long
// output; every seventh check warns.
const demoPlugin = `#!/bin/sh
n=$3
if [ $((n % 7)) -eq 3 ]; then
  printf 'WARNING - %s %s slow (%sms)|time=%sms;100;200\nlong output line\n' "$1" "$2" "$((n % 300))" "$((n % 300))"
  exit 1
fi
printf 'OK - %s %s answered|time=%sms;100;200\n' "$1" "$2" "$((n % 50))"
exit 0
`

func (d *demo) gb(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, d.bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gearbridge %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *demo) start(name, bin string, args ...string) (*proc, error) {
	return d.startEnv(name, nil, bin, args...)
}

// startEnv starts a process with env added to the demo's environment.
func (d *demo) startEnv(name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(d.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return p, nil
}

// stopAll stops the workers and the bridge gracefully, then gearmand.
func (d *demo) stopAll() {
	d.mu.Lock()
	procs := slices.Clone(d.procs)
	d.mu.Unlock()
	slices.Reverse(procs)
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if len(procs) > 0 {
		d.say("==> stopped %d processes", len(procs))
	}
}

func findGearmand() (string, error) {
	for _, p := range []string{"/usr/sbin/gearmand", "/usr/local/sbin/gearmand"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("gearmand"); err == nil {
		return p, nil
	}
	return "", errors.New("gearmand not found: apt-get install gearman-job-server (make demo does this as root)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitLogAddr waits for a log line matching re and returns its first group.
func waitLogAddr(ctx context.Context, path, re string) (string, error) {
	rx := regexp.MustCompile(re)
	for {
		b, _ := os.ReadFile(path)
		if m := rx.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w; log:\n%s", ctx.Err(), b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func key(host, svc string) string { return host + "\x00" + svc }

func state(rc int) string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[min(max(rc, 0), 3)]
}

func pct(s []time.Duration, p int) time.Duration {
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)].Round(100 * time.Microsecond)
}
