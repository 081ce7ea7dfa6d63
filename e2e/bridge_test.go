package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// checkPlugin prints a two-line output with perfdata and exits with the
// return code it is given. It logs every execution, so tests can count runs.
const checkPlugin = `#!/bin/sh
# usage: check_e2e ID RC [SLEEP]
echo "$1" >> "$(dirname "$0")/runs.log"
[ -n "$3" ] && sleep "$3"
printf 'STATE %s id=%s\nsecond line for %s|id=%s;1;2\n' "$2" "$1" "$1" "$1"
exit "$2"
`

// eventHandler logs that it ran.
const eventHandler = `#!/bin/sh
echo "$1" >> "$(dirname "$0")/handlers.log"
`

func writePlugins(t *testing.T, dir string) (check, handler string) {
	t.Helper()
	check, handler = filepath.Join(dir, "check_e2e"), filepath.Join(dir, "handler_e2e")
	writeFile(t, check, checkPlugin, 0o755)
	writeFile(t, handler, eventHandler, 0o755)
	return check, handler
}

// runs counts how often each id appears in a plugin's log.
func runs(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m[strings.TrimSpace(sc.Text())]++
	}
	return m
}

func checkJob(id int, plugin string, rc int, sleep string, coreTime time.Time) (string, modgearman.Job) {
	j := modgearman.Job{
		ResultQueue: "check_results",
		HostName:    fmt.Sprintf("host%04d", id),
		CoreTime:    coreTime,
		Timeout:     30 * time.Second,
		CommandLine: strings.TrimSpace(fmt.Sprintf("%s %d %d %s", plugin, id, rc, sleep)),
	}
	if id%2 == 0 {
		j.Type, j.TargetQueue, j.ServiceDescription = modgearman.JobService, "service", fmt.Sprintf("svc%04d", id)
		return "service", j
	}
	j.Type, j.TargetQueue = modgearman.JobHost, "host"
	return "host", j
}

// idOf extracts the check id from a host name.
func idOf(t *testing.T, host string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(host, "host"))
	if err != nil {
		t.Fatalf("host %q: %v", host, err)
	}
	return n
}

// TestEndToEnd pushes 1,000 classic jobs (service checks, host checks and
// event handlers) through gearmand, the bridge and two remote workers, and
// checks every field of every result.
func TestEndToEnd(t *testing.T) {
	c := newCluster(t)
	check, handler := writePlugins(t, c.dir)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	c.startWorker("w1", baddr, "--services", "--hosts", "--eventhandler", "--max-workers", "16")
	c.startWorker("w2", baddr, "--services", "--hosts", "--eventhandler", "--max-workers", "16")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const checks, handlers = 800, 200
	core := time.Unix(1700000000, 123456000)
	jobs := map[int]modgearman.Job{}
	for i := range checks {
		queue, j := checkJob(i, check, i%4, "", core.Add(time.Duration(i)*time.Second))
		jobs[i] = j
		c.submit(ctx, queue, j)
	}
	for i := range handlers {
		c.submit(ctx, "eventhandler", modgearman.Job{
			Type: modgearman.JobEventHandler, StartTime: core, CoreTime: core,
			CommandLine: fmt.Sprintf("%s eh%d", handler, i),
		})
	}

	results := c.collect("check_results", checks, 2*time.Minute)
	seen := map[int]bool{}
	for _, r := range results {
		id := idOf(t, r.HostName)
		j, ok := jobs[id]
		if !ok || seen[id] {
			t.Fatalf("unexpected or duplicate result for %s", r.HostName)
		}
		seen[id] = true
		wantOut := fmt.Sprintf("STATE %d id=%d\nsecond line for %d|id=%d;1;2", id%4, id, id, id)
		switch {
		case r.ServiceDescription != j.ServiceDescription:
			t.Errorf("%d: service %q, want %q", id, r.ServiceDescription, j.ServiceDescription)
		case r.ReturnCode != id%4:
			t.Errorf("%d: rc %d, want %d", id, r.ReturnCode, id%4)
		case r.Output != wantOut:
			t.Errorf("%d: output %q, want %q", id, r.Output, wantOut)
		case !r.CoreStartTime.Equal(j.CoreTime):
			t.Errorf("%d: core_start_time %v, want %v", id, r.CoreStartTime, j.CoreTime)
		case r.StartTime.IsZero() || r.FinishTime.Before(r.StartTime) || time.Since(r.StartTime) > 5*time.Minute:
			t.Errorf("%d: start %v finish %v", id, r.StartTime, r.FinishTime)
		case r.Type != modgearman.ResultActive || !r.ExitedOK:
			t.Errorf("%d: type %q exited_ok %v", id, r.Type, r.ExitedOK)
		case !strings.HasSuffix(r.Source, "w1") && !strings.HasSuffix(r.Source, "w2"):
			t.Errorf("%d: source %q", id, r.Source)
		}
		// The escaped newline is on the wire, as the classic NEB expects.
		plain, _ := c.codec.Decode(r.raw)
		if !strings.Contains(string(plain), `id=`+strconv.Itoa(id)+`\nsecond line`) {
			t.Errorf("%d: output newline not escaped on the wire: %q", id, plain)
		}
	}
	// openssl as an independent oracle for the encryption of results.
	key := modgearman.NewKey(testKey)
	for _, r := range results[:20] {
		raw, err := base64.StdEncoding.DecodeString(string(r.raw))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("openssl", "enc", "-d", "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(key[:]))
		cmd.Stdin = strings.NewReader(string(raw))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		text := strings.TrimRight(string(out), "\x00")
		want, _ := c.codec.Decode(r.raw)
		if !strings.HasPrefix(text, string(want)) {
			t.Fatalf("openssl decrypts %q, our codec %q", text, want)
		}
		if !strings.Contains(text, "host_name="+r.HostName+"\n") {
			t.Fatalf("openssl text lacks the host: %q", text)
		}
	}
	// Every event handler ran exactly once (they send no result).
	waitRunsOnce(t, filepath.Join(c.dir, "handlers.log"), handlers, 30*time.Second)
}

// waitRunsOnce waits until the plugin log at path names n ids, and fails
// the test if any of them ran more than once.
func waitRunsOnce(t *testing.T, path string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ran := runs(t, path)
		if len(ran) == n {
			for id, k := range ran {
				if k != 1 {
					t.Fatalf("%s ran %d times", id, k)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ran", len(ran), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkerKilled kills one worker with SIGKILL in the middle of checks:
// its unfinished jobs go back to gearmand and the other worker does them.
func TestWorkerKilled(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startBridge("bridge", "127.0.0.1:0", "--resume-grace", "1s")
	w1 := c.startWorker("w1", baddr, "--services", "--hosts", "--max-workers", "8")
	c.startWorker("w2", baddr, "--services", "--hosts", "--max-workers", "8")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 200
	for i := range n {
		queue, j := checkJob(i, check, 0, "0.1", time.Now())
		c.submit(ctx, queue, j)
	}
	first := c.collect("check_results", 40, time.Minute)
	w1.stop(syscall.SIGKILL)
	// The killed worker had checks running: its session ends after the
	// grace and gearmand takes them back.
	requeued := c.waitLog(bp, `session closed.*worker=w1.*requeued=([1-9]\d*)`, 20*time.Second)
	t.Logf("%s checks of the killed worker were requeued", requeued)
	expectAll(t, c, first, n)
}

// expectAll reads results until each of the n checks has one, after the
// results already read; no check may be lost. Duplicates are possible only
// for a check whose result was on the queue when its process was killed.
func expectAll(t *testing.T, c *cluster, first []result, n int) {
	t.Helper()
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprintf("host%04d", i)] = true
	}
	for _, r := range first {
		delete(want, r.HostName)
	}
	dups := 0
	got := map[string]int{}
	for _, r := range first {
		got[r.HostName]++
	}
	if len(want) > 0 {
		for _, r := range c.collectHosts("check_results", want, 2*time.Minute) {
			got[r.HostName]++
		}
	}
	for h, k := range got {
		if k > 1 {
			dups += k - 1
			t.Logf("%s: %d results", h, k)
		}
	}
	t.Logf("%d checks, %d results, %d duplicates", n, len(got)+dups, dups)
}

// TestBridgeRestart restarts the bridge in the middle of checks: workers
// reconnect within 5 s and no result is lost.
func TestBridgeRestart(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	b1, baddr := c.startBridge("bridge1", "127.0.0.1:0")
	c.startWorker("w1", baddr, "--services", "--hosts", "--max-workers", "8")
	c.startWorker("w2", baddr, "--services", "--hosts", "--max-workers", "8")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 200
	for i := range n {
		queue, j := checkJob(i, check, 0, "0.05", time.Now())
		c.submit(ctx, queue, j)
	}
	first := c.collect("check_results", 50, time.Minute)
	b1.stop(syscall.SIGKILL)
	restarted := time.Now()
	b2, _ := c.startBridge("bridge2", baddr)
	c.waitLog(b2, `worker session (started|resumed).*worker=w1`, 10*time.Second)
	c.waitLog(b2, `worker session (started|resumed).*worker=w2`, 10*time.Second)
	if d := time.Since(restarted); d > 8*time.Second {
		t.Errorf("workers took %v to reconnect", d)
	} else {
		t.Logf("both workers reconnected %v after the restart", d.Round(time.Millisecond))
	}
	expectAll(t, c, first, n)
}

// TestNetworkCutResumes cuts the worker's connection for 3 seconds, inside
// the resume grace: the session resumes and no check runs twice.
func TestNetworkCutResumes(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startBridge("bridge", "127.0.0.1:0", "--resume-grace", "30s")
	proxy := newProxy(t, baddr)
	c.startWorker("w1", proxy.addr(), "--services", "--hosts", "--max-workers", "10")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 60
	for i := range n {
		queue, j := checkJob(i, check, 0, "1", time.Now())
		c.submit(ctx, queue, j)
	}
	first := c.collect("check_results", 10, time.Minute)
	proxy.setDown(true)
	proxy.cut()
	time.Sleep(3 * time.Second)
	proxy.setDown(false)
	c.waitLog(bp, `worker session resumed`, 15*time.Second)
	rest := c.collect("check_results", n-len(first), 2*time.Minute)
	got := map[int]int{}
	for _, r := range append(first, rest...) {
		got[idOf(t, r.HostName)]++
	}
	for i := range n {
		if got[i] != 1 {
			t.Errorf("check %d: %d results", i, got[i])
		}
	}
	for id, k := range runs(t, filepath.Join(c.dir, "runs.log")) {
		if k != 1 {
			t.Errorf("check %s ran %d times", id, k)
		}
	}
}

// TestGearmandRestart restarts gearmand: the bridge and the worker recover
// by themselves and serve new checks.
func TestGearmandRestart(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	c.startWorker("w1", baddr, "--services", "--hosts", "--max-workers", "4")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 10 {
		queue, j := checkJob(i, check, 0, "", time.Now())
		c.submit(ctx, queue, j)
	}
	c.collect("check_results", 10, time.Minute)
	c.gm.Restart(t)
	for i := 10; i < 30; i++ {
		queue, j := checkJob(i, check, 0, "", time.Now())
		c.submit(ctx, queue, j)
	}
	got := c.collect("check_results", 20, time.Minute)
	for _, r := range got {
		if id := idOf(t, r.HostName); id < 10 {
			t.Errorf("result for check %d submitted before the restart", id)
		}
	}
}

// TestPluginTimeout runs a plugin that sleeps past its timeout: the classic
// timeout result comes back and the plugin's process group is gone.
func TestPluginTimeout(t *testing.T) {
	c := newCluster(t)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	c.startWorker("w1", baddr, "--services", "--max-workers", "2")
	plugin := filepath.Join(c.dir, "check_sleepy")
	pids := filepath.Join(c.dir, "pids")
	writeFile(t, plugin, "#!/bin/sh\nsleep 60 &\necho $! > "+pids+"\nsleep 60\n", 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.submit(ctx, "service", modgearman.Job{
		Type: modgearman.JobService, ResultQueue: "check_results", HostName: "slow", ServiceDescription: "sleepy",
		CoreTime: time.Now(), Timeout: time.Second, CommandLine: plugin,
	})
	r := c.collect("check_results", 1, 30*time.Second)[0]
	// rc 2, CRITICAL: the default timeout-return.
	if r.ReturnCode != 2 || !strings.HasPrefix(r.Output, "(Service Check Timed Out On Worker: w1)") {
		t.Fatalf("result rc %d output %q", r.ReturnCode, r.Output)
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %d survived the timeout", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid runs; a zombie counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestTopShowsQueuesAndSessions runs `gearbridge top` against gearmand and,
// with an admin certificate, the bridge's AdminService.
func TestTopShowsQueuesAndSessions(t *testing.T) {
	c := newCluster(t)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	w := c.startWorker("w1", baddr, "--services", "--max-workers", "3")
	c.waitLog(w, "session started", 20*time.Second)
	c.gb("certs", "issue", "--dir", c.ca, "--role", "admin", "--name", "ops")
	out := c.gb("top", "-b", "--server", c.gm.Addr(), "--bridge", baddr,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, "ops.crt"), "--tls-key", filepath.Join(c.ca, "ops.key"))
	for _, want := range []string{" service ", "Worker Available", " w1 ", "connected", "|     3 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("top output lacks %q:\n%s", want, out)
		}
	}
	// check_gearman's worker ping on worker_<identifier> is answered for
	// the remote worker, through our check and through Debian's gearman
	// CLI.
	out = c.gb("check", "-H", c.gm.Addr(), "-q", "worker_w1", "-s", "check", "-t", "10")
	if want := "check_gearman OK - w1 has 3 worker and is working on 0 jobs. Version: "; !strings.HasPrefix(out, want) || !strings.Contains(out, "|worker=3;;;3;3 jobs=0c") {
		t.Errorf("check -q worker_w1 -s check:\n%s\nwant it to begin with %q", out, want)
	}
	host, port, _ := net.SplitHostPort(c.gm.Addr())
	cli, err := exec.Command("gearman", "-h", host, "-p", port, "-f", "worker_w1", "check").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(cli), "w1 has 3 worker") {
		t.Errorf("gearman -f worker_w1: %v\n%s", err, cli)
	}
	// A worker certificate is not an admin.
	cmd := exec.Command(gbBin, "top", "-b", "--server", c.gm.Addr(), "--bridge", baddr,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, "w1.crt"), "--tls-key", filepath.Join(c.ca, "w1.key"))
	b, _ := cmd.CombinedOutput()
	if !strings.Contains(string(b), "PermissionDenied") {
		t.Errorf("a worker certificate read the bridge status:\n%s", b)
	}
}

// TestDupServerGetsWorkerResults: with --dupserver, a remote worker's check
// result also goes to the second gearmand, as a passive result, as classic
// workers with dup_results_are_passive=yes send it; the primary result
// stays active.
func TestDupServerGetsWorkerResults(t *testing.T) {
	c := newCluster(t)
	dup := gearmantest.Start(t)
	check, _ := writePlugins(t, c.dir)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0", "--dupserver", dup.Addr())
	c.startWorker("w1", baddr, "--services", "--hosts")
	primary := c.runOneCheck(check, 7)
	if primary.Type != modgearman.ResultActive {
		t.Fatalf("primary result type %q", primary.Type)
	}
	copies := c.collectFrom(dup.Addr(), "check_results", time.Minute, func(got []result) bool { return len(got) >= 1 })
	r := copies[0]
	if r.Type != modgearman.ResultPassive || r.HostName != primary.HostName || r.ReturnCode != primary.ReturnCode ||
		r.Output != primary.Output || !r.FinishTime.Equal(primary.FinishTime) {
		t.Fatalf("copy %+v\nprimary %+v", r.Result, primary.Result)
	}
}
