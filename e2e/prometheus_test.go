package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// The monitoring that ships in contrib/: the alerting rules and the
// Grafana dashboard.
const (
	alertsFile    = "../contrib/prometheus/alerts.yml"
	dashboardFile = "../contrib/grafana/gearbridge.json"
)

// TestPrometheusMonitorsGearbridge runs Debian's real Prometheus against a
// real bridge, remote worker and send daemon and checks, through its HTTP
// API, that
//
//   - every dashboard query and every alert expression parses, and returns
//     series (an alert expression is quiet when all is well, so each
//     series selector in it must return series);
//   - nothing fires while all is well;
//   - a wrong key fires GearbridgeJobsUndecodable, and a stopped worker
//     GearbridgeTargetDown and GearbridgeNoWorkerSessions.
//
// The rules are loaded with every `for:` set to 0s, so that they fire at
// the first evaluation instead of minutes later.
func TestPrometheusMonitorsGearbridge(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (scripts/install-deps.sh installs Debian's as root)")
	}
	c := newCluster(t)
	writeFile(t, c.authz, senderAuthz, 0o644)
	bridgeMetrics, workerMetrics, sendMetrics := freeAddr(t), freeAddr(t), freeAddr(t)
	_, addr := c.startBridge("bridge", "127.0.0.1:0", "--metrics-listen", bridgeMetrics)
	w := c.startWorker("w1", addr, "--services", "--metrics-listen", workerMetrics)
	c.waitLog(w, `session started`, 20*time.Second)
	state := t.TempDir()
	d := c.start("send-daemon", append([]string{"send", "--daemon", "--bridge", addr, "--state-dir", state,
		"--socket", filepath.Join(state, "send.sock"), "--metrics-listen", sendMetrics}, c.senderFlags("sender", "sender-e2e")...)...)
	c.waitLog(d, `send daemon listening`, 20*time.Second)
	for _, a := range []string{bridgeMetrics, workerMetrics, sendMetrics} {
		waitHTTP(t, "http://"+a+"/readyz", 200, 20*time.Second)
	}

	// One check through the bridge and the worker, so that the job and
	// plugin series exist.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.submit(ctx, "service", modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h1",
		ServiceDescription: "prom", CoreTime: time.Now(), Timeout: 10 * time.Second, CommandLine: "/bin/echo OK prometheus"})
	if rs := c.collect("check_results", 1, 30*time.Second); len(rs) != 1 || rs[0].Output != "OK prometheus" {
		t.Fatalf("results %+v", rs)
	}

	prom := startPrometheus(t, promBin, map[string]string{
		"gearbridge-bridge": bridgeMetrics, "gearbridge-worker": workerMetrics, "gearbridge-send": sendMetrics,
	})
	prom.waitSeries(t, `up{job=~"gearbridge.*"} == 1`, 3, 30*time.Second)
	prom.waitSeries(t, `gearbridge_build_info`, 3, 10*time.Second)

	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("%d dashboard queries", len(exprs))
	}
	for _, e := range exprs {
		// Grafana's $__rate_interval is at least four scrape intervals.
		q := strings.ReplaceAll(e, "$__rate_interval", "10s")
		prom.waitSeries(t, q, 1, 30*time.Second)
	}
	rules := alertRules(t)
	selector := regexp.MustCompile(`\b(up|gearbridge_[a-z0-9_]+)(\{[^}]*\})?`)
	for name, expr := range rules {
		if _, err := prom.query(expr); err != nil {
			t.Errorf("alert %s: %v", name, err)
		}
		for _, sel := range selector.FindAllString(expr, -1) {
			if res, err := prom.query(sel); err != nil || len(res) == 0 {
				t.Errorf("alert %s: %s returns no series (%v)", name, sel, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	prom.waitEvaluated(t, 20*time.Second)
	if firing := prom.firing(t); len(firing) > 0 {
		t.Fatalf("alerts firing while all is well: %v", firing)
	}

	// A job encrypted with another key than the bridge's.
	other, err := modgearman.NewCodec("not_the_bridge_key_0123", true)
	if err != nil {
		t.Fatal(err)
	}
	j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h1", ServiceDescription: "wrong key",
		CoreTime: time.Now(), Timeout: 10 * time.Second, CommandLine: "/bin/true"}
	if _, err := c.client.Submit(ctx, "service", "", other.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	prom.waitFiring(t, "GearbridgeJobsUndecodable", "gearbridge-bridge", 30*time.Second)

	w.stop(syscall.SIGTERM)
	prom.waitFiring(t, "GearbridgeTargetDown", "gearbridge-worker", 30*time.Second)
	prom.waitFiring(t, "GearbridgeNoWorkerSessions", "gearbridge-bridge", 30*time.Second)
	for _, a := range prom.firing(t) {
		if !slices.Contains([]string{"GearbridgeJobsUndecodable/gearbridge-bridge", "GearbridgeTargetDown/gearbridge-worker",
			"GearbridgeNoWorkerSessions/gearbridge-bridge"}, a) {
			t.Errorf("alert %s fires too", a)
		}
	}
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

func waitHTTP(t *testing.T, url string, code int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %s, want %d", url, last, code)
}

// dashboardExprs returns every query of the dashboard's panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// alertRules returns the expression of every alert in the rules file, by
// alert name. The file's syntax is promtool's to check (make lint); this
// reads only "- alert:" and "expr:" lines.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{}
	var name string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "- alert: "); ok {
			name = v
		} else if v, ok := strings.CutPrefix(l, "expr: "); ok && name != "" {
			rules[name] = v
			name = ""
		}
	}
	if len(rules) < 10 {
		t.Fatalf("%d alerts read from %s", len(rules), alertsFile)
	}
	return rules
}

// promServer is a Prometheus of one test.
type promServer struct {
	url string
}

// startPrometheus runs Prometheus on a loopback port, scraping each job's
// target every 2 seconds and evaluating the contrib rules (with `for: 0s`)
// every second, until the test ends.
func startPrometheus(t *testing.T, bin string, jobs map[string]string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAll(rules, []byte("${1}for: 0s"))
	writeFile(t, filepath.Join(dir, "alerts.yml"), string(rules), 0o644)
	// Two seconds to answer a scrape: the daemons run with -race on a
	// busy machine, and one slow scrape would fire GearbridgeTargetDown.
	cfg := "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 1s\nrule_files: [" + filepath.Join(dir, "alerts.yml") + "]\nscrape_configs:\n"
	names := make([]string, 0, len(jobs))
	for n := range jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		cfg += fmt.Sprintf("  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", n, jobs[n])
	}
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg, 0o644)
	listen := freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &promServer{url: "http://" + listen}
	waitHTTP(t, p.url+"/-/ready", 200, 30*time.Second)
	return p
}

// api GETs an API path and decodes the data of a successful answer.
func (p *promServer) api(path string, params url.Values, data any) error {
	resp, err := http.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// query evaluates an instant query and returns its series' labels.
func (p *promServer) query(q string) ([]map[string]string, error) {
	var d struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &d); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	out := make([]map[string]string, len(d.Result))
	for i, r := range d.Result {
		out[i] = r.Metric
	}
	return out, nil
}

// waitSeries waits until q returns at least n series.
func (p *promServer) waitSeries(t *testing.T, q string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := p.query(q)
		if err != nil {
			t.Fatal(err) // a query that does not parse never will
		}
		if len(res) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d series after %v, want %d", q, len(res), timeout, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitEvaluated waits until every rule group was evaluated twice, so that
// alerts reflect the scraped state.
func (p *promServer) waitEvaluated(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var d struct {
			Groups []struct {
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"groups"`
		}
		if err := p.api("/api/v1/rules", nil, &d); err != nil {
			t.Fatal(err)
		}
		ok := len(d.Groups) > 0
		for _, g := range d.Groups {
			ok = ok && g.LastEvaluation.After(start.Add(time.Second))
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not evaluated within %v", timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// firing lists the firing alerts as "name/job".
func (p *promServer) firing(t *testing.T) []string {
	t.Helper()
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", nil, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range d.Alerts {
		if a.State == "firing" {
			out = append(out, a.Labels["alertname"]+"/"+a.Labels["job"])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// waitFiring waits until the alert fires for the job.
func (p *promServer) waitFiring(t *testing.T, alert, job string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := p.firing(t)
		if slices.Contains(f, alert+"/"+job) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not fire for %s within %v; firing: %v", alert, job, timeout, f)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
