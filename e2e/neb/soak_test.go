//go:build soak

package nebe2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/internal/linkproxy"
	"github.com/gearbridge/gearbridge/internal/nagios"
)

// soakConfig is read from the environment (make soak passes SOAK_MINUTES).
type soakConfig struct {
	duration    time.Duration // SOAK_MINUTES, default 10
	services    int           // SOAK_SERVICES, default 3000
	interval    int           // SOAK_INTERVAL in seconds, default 10: services/interval checks per second
	workers     int           // SOAK_WORKERS remote worker processes (one session each), default 100
	slots       int           // SOAK_SLOTS plugins per remote worker, default 4
	passiveRate int           // SOAK_PASSIVE_RATE passive results per second, default 20
	seed        uint64        // SOAK_SEED, default from the clock
}

func soakEnv(t *testing.T, name string, def float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	c := soakConfig{
		duration:    time.Duration(soakEnv(t, "SOAK_MINUTES", 10) * float64(time.Minute)),
		services:    int(soakEnv(t, "SOAK_SERVICES", 3000)),
		interval:    int(soakEnv(t, "SOAK_INTERVAL", 10)),
		workers:     int(soakEnv(t, "SOAK_WORKERS", 100)),
		slots:       int(soakEnv(t, "SOAK_SLOTS", 4)),
		passiveRate: int(soakEnv(t, "SOAK_PASSIVE_RATE", 20)),
		seed:        uint64(soakEnv(t, "SOAK_SEED", float64(time.Now().UnixNano()%1e9))),
	}
	return c
}

const (
	soakServicesPerHost = 30
	soakPassive         = 50 // passive-only services on the host "passive"
	checkDummy          = "/usr/lib/nagios/plugins/check_dummy"
)

// soakObjects: hosts h000.. with 30 services each, every check the real
// check_dummy returning OK, and the host "passive" whose services only
// take passive results.
func soakObjects(c soakConfig) func(dir string) string {
	return func(dir string) string {
		var b strings.Builder
		b.WriteString(nagios.QuietObjects("admin"))
		fmt.Fprintf(&b, `define command {
  command_name check_dummy
  command_line %s $ARG1$ $ARG2$
}
define host {
  host_name passive
  address 127.0.0.1
  check_command check_dummy!0!passive
  check_interval 60
  retry_interval 10
  max_check_attempts 2
  check_period 24x7
  contacts admin
  notification_period 24x7
}
`, checkDummy)
		for i := range soakPassive {
			fmt.Fprintf(&b, `define service {
  host_name passive
  service_description p%02d
  check_command check_dummy!0!unused
  active_checks_enabled 0
  passive_checks_enabled 1
  check_interval 60
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  contacts admin
}
`, i)
		}
		hosts := (c.services + soakServicesPerHost - 1) / soakServicesPerHost
		for h := range hosts {
			fmt.Fprintf(&b, `define host {
  host_name h%03d
  address 127.0.0.1
  check_command check_dummy!0!host h%03d
  check_interval 60
  retry_interval 10
  max_check_attempts 2
  check_period 24x7
  contacts admin
  notification_period 24x7
}
`, h, h)
			for s := range soakServicesPerHost {
				if h*soakServicesPerHost+s >= c.services {
					break
				}
				fmt.Fprintf(&b, `define service {
  host_name h%03d
  service_description s%02d
  check_command check_dummy!0!soak h%03d s%02d
  check_interval %d
  retry_interval %d
  max_check_attempts 2
  check_period 24x7
  notification_period 24x7
  contacts admin
}
`, h, s, h, s, c.interval, c.interval)
			}
		}
		return b.String()
	}
}

// soakProc is one gearbridge process of the soak.
type soakProc struct {
	name, metrics string
	args          []string
	cmd           *exec.Cmd
	done          chan struct{}
	stdin         io.WriteCloser
	started       time.Time
	restarts      int
	stopped       atomic.Bool // by the soak (a fault or the end), not by itself
	reported      bool        // its unexpected exit is logged; under soak.crashMu
}

// exited returns how p ended when it exited by itself, or "".
func (p *soakProc) exited() string {
	if p.stopped.Load() || p.done == nil {
		return ""
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.String()
	default:
		return ""
	}
}

// crashes logs every process that exited by itself since the last call
// and returns all of them.
func (s *soak) crashes() []string {
	s.crashMu.Lock()
	defer s.crashMu.Unlock()
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	var out []string
	for _, p := range procs {
		if how := p.exited(); how != "" {
			out = append(out, p.name+"("+how+")")
			if !p.reported {
				p.reported = true
				s.logf("CRASH: %s exited by itself: %s; see %s.log", p.name, how, p.name)
			}
		}
	}
	return out
}

type soak struct {
	t      *testing.T
	cfg    soakConfig
	rng    *rand.Rand
	bin    string
	dir    string
	ca     string
	srv    *gearmantest.Server
	n      *smallNagios
	bridge *soakProc
	baddr  string
	wproxy *linkproxy.Proxy // workers → bridge
	sproxy *linkproxy.Proxy // sender → bridge
	gmw    *soakProc
	sender *soakProc

	mu      sync.Mutex
	crashMu sync.Mutex
	workers []*soakProc
	procs   []*soakProc
	events  []string // what happened when, for the report
	start   time.Time
}

func (s *soak) logf(format string, a ...any) {
	msg := fmt.Sprintf("%6.1fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, a...)
	s.t.Log(msg)
	s.mu.Lock()
	s.events = append(s.events, msg)
	s.mu.Unlock()
}

// freeAddr returns a loopback address that nothing listens on. The port
// comes from below the kernel's ephemeral range: a port the
// kernel hands out (127.0.0.1:0) is free again once closed, and among the
// soak's hundreds of outgoing connections one could take it before the
// process it is meant for binds it (seen: a worker that exited at start,
// its metrics address in use).
func freeAddr(t *testing.T) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low <= 11024 {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for the soak's listeners", low)
	}
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(low-11024)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// launch starts p (again) in its own process group, its output appended
// to dir/<name>.log.
func (s *soak) launch(p *soakProc) {
	s.t.Helper()
	f, err := os.OpenFile(filepath.Join(s.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(s.t, err)
	cmd := exec.Command(s.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.name == "sender" {
		p.stdin, err = cmd.StdinPipe()
		must(s.t, err)
	}
	must(s.t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	s.crashMu.Lock()
	p.cmd, p.done, p.started, p.reported = cmd, done, time.Now(), false
	p.stopped.Store(false)
	s.crashMu.Unlock()
}

func (s *soak) startProc(name, metrics string, args ...string) *soakProc {
	s.t.Helper()
	p := &soakProc{name: name, metrics: metrics, args: args}
	if metrics != "" {
		p.args = append(p.args, "--metrics-listen", metrics)
	}
	s.launch(p)
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p
}

// stop ends p's process group: sig, then SIGKILL after grace.
func (p *soakProc) stop(sig syscall.Signal, grace time.Duration) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.stopped.Store(true)
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (s *soak) stopAll() {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(syscall.SIGTERM, 5*time.Second) })
	}
	wg.Wait()
}

func (s *soak) gb(args ...string) { s.t.Helper(); gbRun(s.t, s.bin, args...) }

// waitLog waits for re in the log of p and returns its first group.
func (s *soak) waitLog(p *soakProc, re string, since int, timeout time.Duration) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(filepath.Join(s.dir, p.name+".log"))
		if len(b) >= since {
			if m := rx.FindSubmatch(b[since:]); m != nil {
				if len(m) > 1 {
					return string(m[1])
				}
				return string(m[0])
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not log %q within %v:\n%s", p.name, re, timeout, tail(string(b), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func logSize(dir, name string) int {
	fi, err := os.Stat(filepath.Join(dir, name+".log"))
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

func (s *soak) startBridge() {
	s.t.Helper()
	since := logSize(s.dir, "bridge")
	if s.bridge == nil {
		s.bridge = s.startProc("bridge", freeAddr(s.t), "bridge", "--listen", s.baddr, "--server", s.srv.Addr(), "--key", key,
			"--tls-ca", filepath.Join(s.ca, "ca.crt"), "--tls-cert", filepath.Join(s.ca, "bridge.crt"),
			"--tls-key", filepath.Join(s.ca, "bridge.key"), "--authz", filepath.Join(s.dir, "authz.yaml"),
			"--log-level", "warn")
	} else {
		s.launch(s.bridge)
		s.bridge.restarts++
	}
	// The bridge logs at warn, so wait for its port instead of its log.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.baddr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-s.bridge.done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
			s.t.Fatalf("bridge exited at start:\n%s", tail(string(b[since:]), 20))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatal("bridge not listening after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSoak runs the whole system under load for SOAK_MINUTES with faults
// injected at random times and prints one summary line. It is not part of
// make test: make soak runs it (go test -tags soak).
func TestSoak(t *testing.T) {
	if _, err := os.Stat(checkDummy); err != nil {
		t.Fatalf("%s missing: apt-get install -y monitoring-plugins-basic", checkDummy)
	}
	cfg := soakConfigFromEnv(t)
	s := &soak{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 1)), bin: filepath.Join(artifacts(t), "gearbridge"), dir: t.TempDir()}
	t.Cleanup(func() {
		s.stopAll()
		s.keep(os.Getenv("SOAK_KEEP"))
		if t.Failed() {
			for _, n := range []string{"bridge", "gmworker", "sender", "w000"} {
				b, _ := os.ReadFile(filepath.Join(s.dir, n+".log"))
				t.Logf("---- %s log ----\n%s", n, tail(string(b), 30))
			}
		}
	})
	s.setup()
	s.run()
}

// keep copies the logs and status.dat to dir (SOAK_KEEP), for a look after
// the run.
func (s *soak) keep(dir string) {
	if dir == "" {
		return
	}
	_ = os.MkdirAll(dir, 0o755)
	var files []string
	if s.n != nil {
		files = append(files, filepath.Join(s.n.dir, "nagios.log"), filepath.Join(s.n.dir, "status.dat"), filepath.Join(s.n.dir, "stdout.log"))
	}
	logs, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	if s.srv != nil {
		logs = append(logs, s.srv.LogPath())
	}
	for _, f := range append(files, logs...) {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
		}
	}
	s.t.Logf("logs kept in %s", dir)
}

func (s *soak) setup() {
	t, cfg := s.t, s.cfg
	s.start = time.Now()
	// On this kind of disk gearmand's libsqlite3 queue manages about 100
	// jobs/s (one synced transaction per submit and per completion, see
	// README), far below the soak's rate, so by default the database is on
	// tmpfs: it survives gearmand's kill -9, which is what is tested here.
	dbDir := os.Getenv("SOAK_DB_DIR")
	if dbDir == "" {
		dbDir = "/dev/shm"
	}
	tmp, err := os.MkdirTemp(dbDir, "gearbridge-soak-")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	db := filepath.Join(tmp, "gearmand.sqlite")
	s.srv = gearmantest.Start(t, gearmantest.WithArgs("--queue-type=libsqlite3", "--libsqlite3-db="+db))

	// Certificates: the bridge, one identity per remote worker, the sender.
	s.ca = filepath.Join(s.dir, "ca")
	s.gb("certs", "init", "--dir", s.ca)
	s.gb("certs", "issue", "--dir", s.ca, "--role", "bridge", "--name", "bridge", "--san", "localhost,127.0.0.1")
	for i := range cfg.workers {
		s.gb("certs", "issue", "--dir", s.ca, "--role", "worker", "--name", fmt.Sprintf("w%03d", i))
	}
	s.gb("certs", "issue", "--dir", s.ca, "--role", "sender", "--name", "sender")
	must(t, os.WriteFile(filepath.Join(s.dir, "authz.yaml"), []byte(
		"rules:\n  - {identity: \"w*\", role: worker, queues: [\"service\", \"host\"]}\n  - {identity: sender, role: sender, hosts: [\"*\"]}\n"), 0o644))
	s.logf("gearmand (libsqlite3 queue in %s) on %s, %d certificates issued", db, s.srv.Addr(), cfg.workers+2)

	s.baddr = freeAddr(t)
	s.startBridge()
	s.wproxy = newSoakProxy(t, s.baddr)
	s.sproxy = newSoakProxy(t, s.baddr)
	tls := func(name string) []string {
		return []string{"--tls-ca", filepath.Join(s.ca, "ca.crt"), "--tls-cert", filepath.Join(s.ca, name+".crt"), "--tls-key", filepath.Join(s.ca, name+".key")}
	}
	for i := range cfg.workers {
		name := fmt.Sprintf("w%03d", i)
		args := append([]string{"worker", "--bridge", s.wproxy.Addr(), "--services", "--hosts",
			"--max-workers", strconv.Itoa(cfg.slots), "--internal_check_dummy=no", "--log-level", "warn"}, tls(name)...)
		s.workers = append(s.workers, s.startProc(name, freeAddr(t), args...))
	}
	s.gmw = s.startProc("gmworker", freeAddr(t), "worker", "--transport=gearman", "--server", s.srv.Addr(), "--key", key,
		"--identifier", "gmworker", "--services", "--hosts", "--max-workers", "8", "--internal_check_dummy=no", "--log-level", "warn")
	state := filepath.Join(s.dir, "sender-state")
	must(t, os.MkdirAll(state, 0o700))
	s.sender = s.startProc("sender", freeAddr(t), append([]string{"send", "--daemon", "--bridge", s.sproxy.Addr(),
		"--state-dir", state, "--drain-interval", "1s", "--log-level", "warn"}, tls("sender")...)...)
	s.logf("bridge on %s, %d remote workers (%d slots each) behind a proxy, a gearman-transport worker, a sender daemon",
		s.baddr, cfg.workers, cfg.slots)

	s.n = startNagiosOn(t, s.srv, soakObjects(cfg),
		"hosts=yes\nservices=yes\ninternal_check_dummy=no\nresult_workers=6\ngearmand_down_hold=30s\nlog_stats_interval=10\n",
		// Nagios' default timeouts: the bridge answers a job its worker
		// never returns after the timeout plus --timeout-grace.
		"service_check_timeout=60", "host_check_timeout=30", "log_passive_checks=1",
		"service_inter_check_delay_method=s", fmt.Sprintf("max_service_check_spread=%d", cfg.interval),
		"host_inter_check_delay_method=s", "max_host_check_spread=10", "status_update_interval=2")
	s.logf("nagios 4.4.6 with the module: %d services every %ds (%d checks/s), %d passive services",
		cfg.services, cfg.interval, cfg.services/cfg.interval, soakPassive)
}

// fault is one injected fault; do returns when the fault is over.
type fault struct {
	name string
	do   func()
}

func (s *soak) faults() []fault {
	return []fault{
		{"worker-kill9", func() {
			w := s.workers[s.rng.IntN(len(s.workers))]
			w.stop(syscall.SIGKILL, time.Second)
			s.logf("fault: kill -9 worker %s (pid %d)", w.name, w.cmd.Process.Pid)
			time.Sleep(2 * time.Second)
			s.launch(w)
			w.restarts++
			s.logf("worker %s started again (pid %d)", w.name, w.cmd.Process.Pid)
		}},
		{"bridge-restart", func() {
			s.logf("fault: bridge restart (SIGTERM, start on the same address)")
			s.bridge.stop(syscall.SIGTERM, 40*time.Second)
			s.startBridge()
			s.logf("bridge listening again")
		}},
		{"gearmand-kill9", func() {
			s.logf("fault: kill -9 gearmand")
			s.srv.Kill()
			time.Sleep(2 * time.Second)
			s.srv.Restart(s.t)
			s.logf("gearmand started again on the same database")
		}},
		{"net-cut-30s", func() {
			s.logf("fault: network between workers and bridge cut for 30s")
			s.wproxy.Pause()
			time.Sleep(30 * time.Second)
			s.wproxy.Resume()
			s.logf("network back")
		}},
		{"reload-1", s.reload}, {"reload-2", s.reload}, {"reload-3", s.reload},
	}
}

func (s *soak) reload() {
	s.logf("fault: core reload (SIGHUP)")
	must(s.t, s.n.cmd.Process.Signal(syscall.SIGHUP))
}

// window is a fault's end and the services still waiting for a check
// started between it and deadline.
type window struct {
	name     string
	end      time.Time
	deadline time.Time
	waiting  map[string]bool
}

// monitor samples status.dat.
type monitor struct {
	mu        sync.Mutex
	last      map[string]int64
	latencies []float64
	checks    int // last_check changes seen
	maxGap    int64
	gapName   string
	windows   []*window
	stale     map[string][]string // fault → services without a check in time
}

func (m *monitor) sample(st map[string]nagios.Status, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range st {
		if s.Host || strings.HasPrefix(name, "passive/") || !s.Checked {
			continue
		}
		prev, seen := m.last[name]
		if seen && s.LastCheck != prev {
			m.checks++
			m.latencies = append(m.latencies, s.Latency)
			if gap := s.LastCheck - prev; gap > m.maxGap {
				m.maxGap, m.gapName = gap, name
			}
		}
		m.last[name] = s.LastCheck
		for _, w := range m.windows {
			if w.waiting[name] && s.LastCheck >= w.end.Unix() && s.LastCheck <= w.deadline.Unix() {
				delete(w.waiting, name)
			}
		}
	}
	keep := m.windows[:0]
	for _, w := range m.windows {
		// A check started by the deadline shows in status.dat a few
		// seconds later (its run, the status update interval, sampling).
		if now.Before(w.deadline.Add(10*time.Second)) && len(w.waiting) > 0 {
			keep = append(keep, w)
			continue
		}
		if len(w.waiting) > 0 {
			names := make([]string, 0, len(w.waiting))
			for n := range w.waiting {
				names = append(names, n)
			}
			slices.Sort(names)
			m.stale[w.name] = names
		}
	}
	m.windows = keep
}

// watch opens a window after a fault: every active service must be
// checked (last_check at or after end) within three intervals.
func (m *monitor) watch(name string, end time.Time, within time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &window{name: name, end: end, deadline: end.Add(within), waiting: map[string]bool{}}
	for n := range m.last {
		w.waiting[n] = true
	}
	m.windows = append(m.windows, w)
}

// usage is one process's resources at one moment.
type usage struct {
	rssKB, fds, goroutines int
	pid                    int
	cpu                    float64 // seconds of CPU, the process's and its reaped children's (plugins)
	age                    float64 // seconds since the process started
}

func procUsage(pid int) usage {
	u := usage{pid: pid, goroutines: -1}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			u.rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	u.fds = len(ents)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// utime stime cutime cstime are fields 14-17, counted after the
		// command name in parentheses; USER_HZ is 100 on Linux.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b)[i+1:])
			for _, k := range []int{11, 12, 13, 14} {
				if k < len(f) {
					v, _ := strconv.ParseFloat(f[k], 64)
					u.cpu += v / 100
				}
			}
			if up, err := os.ReadFile("/proc/uptime"); err == nil && len(f) > 19 {
				start, _ := strconv.ParseFloat(f[19], 64)
				now, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
				u.age = now - start/100
			}
		}
	}
	return u
}

func goroutines(addr string) int {
	if addr == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// settledSnapshot takes five snapshots a second apart and keeps, per
// process, the fewest fds and goroutines seen (and the last RSS and CPU):
// a worker running plugins at one instant holds their pipes and goroutines
// for a moment, which is load, not growth.
func (s *soak) settledSnapshot() map[string]usage {
	out := s.snapshot()
	for range 4 {
		time.Sleep(time.Second)
		next := s.snapshot()
		for name, u := range next {
			if o, ok := out[name]; ok && o.pid == u.pid {
				u.fds = min(u.fds, o.fds)
				if o.goroutines >= 0 && u.goroutines >= 0 {
					u.goroutines = min(u.goroutines, o.goroutines)
				}
			}
			out[name] = u
		}
	}
	return out
}

// snapshot takes every process's usage: nagios, gearmand, the bridge, the
// gearman worker, the sender, and the remote workers summed.
func (s *soak) snapshot() map[string]usage {
	out := map[string]usage{"nagios": procUsage(s.n.cmd.Process.Pid)}
	if pid, err := os.ReadFile(filepath.Join(filepath.Dir(s.srv.LogPath()), "gearmand.pid")); err == nil {
		n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
		out["gearmand"] = procUsage(n)
	}
	for _, p := range []*soakProc{s.bridge, s.gmw, s.sender} {
		u := procUsage(p.cmd.Process.Pid)
		u.goroutines = goroutines(p.metrics)
		out[p.name] = u
	}
	var sum usage
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(func() {
			u := procUsage(w.cmd.Process.Pid)
			u.goroutines = goroutines(w.metrics)
			mu.Lock()
			sum.rssKB += u.rssKB
			sum.fds += u.fds
			sum.goroutines += u.goroutines
			sum.cpu += u.cpu
			mu.Unlock()
		})
	}
	wg.Wait()
	out["workers"] = sum
	out["at"] = usage{cpu: float64(time.Now().UnixNano()) / 1e9}
	return out
}

// bridgeMetrics returns the bridge's session gauges and job counters
// (since its last start) in one line.
func bridgeMetrics(addr string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "unreachable"
	}
	defer resp.Body.Close()
	rx := regexp.MustCompile(`^gearbridge_bridge_(sessions\{state="(attached|detached)"\}|jobs_(dispatched|completed|timed_out|requeued|resent)_total\{[^}]*queue="(service|host)"\}|jobs_(timed_out|requeued|resent)_total) (\S+)$`)
	sums := map[string]float64{}
	var order []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := rx.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		k := m[2] + m[3] + m[5]
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		v, _ := strconv.ParseFloat(m[6], 64)
		sums[k] += v
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("%s=%.0f", k, sums[k]))
	}
	return strings.Join(out, ",")
}

var statsRx = regexp.MustCompile(`statistics: (\d+) jobs submitted in \d+s \([\d.]+/s\), (\d+) results received(.*)`)

// moduleStats sums the module's statistics lines in nagios.log.
func moduleStats(log string) map[string]int {
	out := map[string]int{}
	for _, m := range statsRx.FindAllStringSubmatch(log, -1) {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		out["submitted"] += a
		out["results"] += b
		for _, f := range strings.Fields(m[3]) {
			k, v, ok := strings.Cut(f, "=")
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); ok && err == nil && k != "in_flight" && k != "queued" {
				out[k] += n
			}
		}
	}
	return out
}

func pctl(v []float64, p float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func (s *soak) run() {
	t, cfg := s.t, s.cfg
	mon := &monitor{last: map[string]int64{}, stale: map[string][]string{}}
	statusPath := filepath.Join(s.n.dir, "status.dat")
	stopMon := make(chan struct{})
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		every(2*time.Second, stopMon, func() { mon.sample(nagios.ReadStatus(statusPath), time.Now()) })
	}()

	// The bridge's sessions every 15s, to see how fast they come back.
	go every(15*time.Second, stopMon, func() {
		s.logf("bridge: %s", bridgeMetrics(s.bridge.metrics))
		s.crashes()
	})

	// Passive results: one line per 1/rate seconds through the daemon's
	// stdin; each carries a sequence number.
	var sent int
	var sentMu sync.Mutex
	stopSend := make(chan struct{})
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		tk := time.NewTicker(time.Second / time.Duration(cfg.passiveRate))
		defer tk.Stop()
		for {
			select {
			case <-stopSend:
				return
			case <-tk.C:
			}
			sentMu.Lock()
			line := fmt.Sprintf("passive\tp%02d\t0\tOK soak seq=%d\n", sent%soakPassive, sent)
			if _, err := io.WriteString(s.sender.stdin, line); err != nil {
				sentMu.Unlock()
				s.logf("sender stdin: %v", err)
				return
			}
			sent++
			sentMu.Unlock()
		}
	}()

	// The plan: a quiet first minute (the baseline sample), faults in
	// shuffled order at random times in their slots, a quiet end of three
	// intervals plus 15s, and the sender's 2-minute outage somewhere in
	// between.
	within := time.Duration(3*cfg.interval) * time.Second
	baseline := min(time.Minute, cfg.duration/4)
	from, to := baseline+10*time.Second, cfg.duration-within-15*time.Second
	if to < from+time.Duration(len(s.faults()))*time.Second {
		to = from + time.Duration(len(s.faults()))*time.Second // a short run: faults come late
	}
	fs := s.faults()
	if os.Getenv("SOAK_FAULTS") == "none" {
		fs = nil
	}
	s.rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	slot := (to - from) / time.Duration(max(len(fs), 1))
	outage := min(2*time.Minute, (to-from)/2)
	outageAt := from + time.Duration(s.rng.Int64N(max(int64(to-from-outage), 0)+1))
	s.logf("plan (seed %d): baseline at %v, faults from %v to %v, %v per fault, sender outage of %v at %v",
		cfg.seed, baseline, from, to, slot.Round(time.Second), outage, outageAt.Round(time.Second))

	var first map[string]usage
	go func() {
		time.Sleep(time.Until(s.start.Add(outageAt)))
		s.logf("fault: bridge away for the sender for %v (spool)", outage)
		s.sproxy.Refuse(true)
		time.Sleep(outage)
		s.sproxy.Refuse(false)
		s.logf("bridge back for the sender")
	}()
	time.Sleep(time.Until(s.start.Add(baseline)))
	first = s.settledSnapshot()
	s.logf("baseline sample taken")
	var done []string
	for i, f := range fs {
		// Nagios needs a moment after a reload before status.dat is
		// complete again; any time in the slot's first 80% will do.
		at := from + time.Duration(i)*slot + time.Duration(s.rng.Int64N(int64(slot)*8/10+1))
		if f.name == "net-cut-30s" || f.name == "bridge-restart" {
			at = from + time.Duration(i)*slot
		}
		time.Sleep(time.Until(s.start.Add(at)))
		f.do()
		end := time.Now()
		mon.watch(f.name, end, within)
		done = append(done, fmt.Sprintf("%s@%.0fs", f.name, end.Sub(s.start).Seconds()))
	}
	time.Sleep(time.Until(s.start.Add(cfg.duration)))
	last := s.settledSnapshot()
	s.logf("end sample taken")

	// Passive results: stop sending and give the spool time to drain.
	close(stopSend)
	<-sendDone
	sentMu.Lock()
	total := sent
	sentMu.Unlock()
	// Nagios 4.4.6 logs a passive result with the output the service had
	// before it (the first one of a service, and the first after a reload,
	// as "(null)"), so each line is one result processed, and a sequence
	// number logged twice is a result that arrived twice.
	passiveRx := regexp.MustCompile(`(?m)^\[\d+\] PASSIVE SERVICE CHECK: passive;p\d+;0;(.*)$`)
	var arrived, dup int
	for deadline := time.Now().Add(45 * time.Second); ; {
		seen := map[string]int{}
		lines := passiveRx.FindAllStringSubmatch(s.n.log(), -1)
		dup = 0
		for _, m := range lines {
			if strings.HasPrefix(m[1], "OK soak seq=") {
				seen[m[1]]++
				if seen[m[1]] > 1 {
					dup++
				}
			}
		}
		// Each line is one passive result processed. Nagios 4.4 logs the
		// service's output from before the result (so after a reload, which
		// resets it, the first line of each service shows "(null)", and the
		// last result before a reload or the end never shows its own
		// output): count lines, not the sequence numbers they show.
		arrived = len(lines) - dup
		if arrived >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	s.logf("passive results: %d sent, %d arrived; gearmand queues: %s", total, arrived, s.queues())
	bridgeEnd := bridgeMetrics(s.bridge.metrics)
	crashed := s.crashes()
	if len(crashed) > 0 {
		t.Errorf("processes exited by themselves: %v", crashed)
	}
	// Let the last fault's window close.
	time.Sleep(3 * time.Second)
	close(stopMon)
	<-monDone
	mon.sample(nagios.ReadStatus(statusPath), time.Now().Add(time.Hour))

	log := s.n.log()
	alerts := regexp.MustCompile(`(?m)^\[\d+\] (SERVICE|HOST) ALERT: .*$`).FindAllString(log, -1)
	orphans := strings.Count(log, "gearbridge: check orphaned")
	ms := moduleStats(log)
	elapsed := time.Since(s.start)
	var staleN int
	var staleParts []string
	for _, f := range fs {
		if names := mon.stale[f.name]; len(names) > 0 {
			staleN += len(names)
			staleParts = append(staleParts, fmt.Sprintf("%s:%d", f.name, len(names)))
			t.Errorf("after %s, %d services got no check within %v, e.g. %v", f.name, len(names), within, names[:min(5, len(names))])
		}
	}
	if len(alerts) > 0 {
		t.Errorf("%d false alerts, e.g. %q", len(alerts), alerts[:min(5, len(alerts))])
	}
	if arrived < total {
		t.Errorf("passive results: %d sent, %d arrived", total, arrived)
	}
	var res, cpu []string
	flat := true
	span := last["at"].cpu - first["at"].cpu
	for _, name := range []string{"nagios", "gearmand", "bridge", "gmworker", "sender", "workers"} {
		a, b := first[name], last[name]
		ratio := float64(b.rssKB) / max(float64(a.rssKB), 1)
		part := fmt.Sprintf("%s:rss=%d->%dMB,fds=%d->%d", name, a.rssKB>>10, b.rssKB>>10, a.fds, b.fds)
		if a.goroutines >= 0 && b.goroutines >= 0 {
			part += fmt.Sprintf(",goroutines=%d->%d", a.goroutines, b.goroutines)
		}
		if a.pid != b.pid && a.pid != 0 {
			part += "(restarted)"
		} else if ratio > 1.15 || float64(b.fds) > float64(a.fds)*1.15+5 || float64(b.goroutines) > float64(a.goroutines)*1.15+5 {
			flat = false
			part += "(GREW)"
		}
		res = append(res, part)
		switch {
		case a.pid == b.pid || name == "workers":
			cpu = append(cpu, fmt.Sprintf("%s:%.0f%%", name, 100*(b.cpu-a.cpu)/span))
		case b.age > 0:
			cpu = append(cpu, fmt.Sprintf("%s:%.0f%%(since_restart)", name, 100*b.cpu/b.age))
		}
	}
	if !flat {
		t.Errorf("resources grew by more than 15%%: %v", res)
	}
	results := ms["results"]
	// Results the module took minus passive ones; more than were submitted
	// are duplicates or the bridge's timeout results (a lower bound, as
	// checks still running at the end have none yet).
	active := results - arrived - dup
	rate := float64(ms["submitted"]) / elapsed.Seconds()
	summary := fmt.Sprintf("summary minutes=%.1f services=%d interval=%ds target=%d/s sustained=%.0f/s "+
		"scheduled=%d submitted=%d results_injected=%d active_results=%d checks_seen=%d given_back=%d held=%d not_submitted=%d submit_failed=%d orphaned=%d bad_results=%d "+
		"no_result_after_fault=%d%s max_gap=%ds(%s) extra_results=%d passive_sent=%d passive_arrived=%d passive_dup=%d "+
		"latency_p50=%.3fs latency_p99=%.3fs false_alerts=%d orphan_lines=%d faults=%s resources=%s cpu_between_samples=%s load=%s bridge_end=%s gearmand_end=%q crashed=%s verdict=%s",
		elapsed.Minutes(), cfg.services, cfg.interval, cfg.services/cfg.interval, rate,
		ms["submitted"]+ms["not_submitted"], ms["submitted"], results, active, mon.checks, ms["given_back"], ms["held"], ms["not_submitted"], ms["submit_failed"], ms["orphaned"], ms["bad_results"],
		staleN, bracket(staleParts), mon.maxGap, mon.gapName, max(active-ms["submitted"], 0), total, arrived, dup,
		pctl(mon.latencies, 50), pctl(mon.latencies, 99), len(alerts), orphans, strings.Join(done, ","), strings.Join(res, ";"), strings.Join(cpu, ","), loadavg(), bridgeEnd, s.queues(), strings.Join(append(crashed, "none")[:max(len(crashed), 1)], ","),
		map[bool]string{true: "PASS", false: "FAIL"}[!t.Failed()])
	fmt.Println(summary)
	t.Log(summary)
}

// queues returns gearmand's status lines (function, total, running,
// workers) in one line.
func (s *soak) queues() string {
	out, err := exec.Command("gearadmin", "-h", "127.0.0.1", "-p", strconv.Itoa(s.srv.Port()), "--status").CombinedOutput()
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && l != "." && !strings.HasPrefix(l, "worker_") {
			keep = append(keep, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(keep, "; ")
}

// loadavg returns the 1, 5 and 15 minute load averages, comma separated:
// the machine is shared, and its load explains a rate below the target.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ",")
}

func bracket(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return "(" + strings.Join(p, ",") + ")"
}

// every calls f every d until stop is closed.
func every(d time.Duration, stop <-chan struct{}, f func()) {
	tk := time.NewTicker(d)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			f()
		}
	}
}
