package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// senderAuthz allows workers as the cluster does, the sender "sender-e2e"
// any host and "sender-limited" only hosts "allowed-*".
const senderAuthz = `rules:
  - {identity: "w*", role: worker, queues: ["service", "host", "eventhandler", "hostgroup_*"]}
  - {identity: "sender-e2e", role: sender, hosts: ["*"]}
  - {identity: "sender-limited", role: sender, hosts: ["allowed-*"]}
`

// senderFlags issues a client certificate (once) and returns the TLS flags.
func (c *cluster) senderFlags(role, name string) []string {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.ca, name+".crt")); err != nil {
		c.gb("certs", "issue", "--dir", c.ca, "--role", role, "--name", name)
	}
	return []string{"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, name+".crt"),
		"--tls-key", filepath.Join(c.ca, name+".key")}
}

// send runs `gearbridge send` with stdin and returns its exit code and
// output.
func (c *cluster) send(stdin string, args ...string) (int, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gbBin, append([]string{"send"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		c.t.Fatalf("send: %v\n%s", err, out)
	}
	return 0, string(out)
}

// assertQueueEmpty fails if queue holds a job.
func (c *cluster) assertQueueEmpty(queue string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, c.gm.Addr(), gearman.WorkerOptions{ClientID: "e2e-empty"})
	if err != nil {
		c.t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(queue); err != nil {
		c.t.Fatal(err)
	}
	j, err := wc.TryGrab(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	if j != nil {
		plain, _ := c.codec.Decode(j.Data)
		c.t.Fatalf("queue %s is not empty: %q", queue, plain)
	}
}

// opensslDecrypt decrypts a workload with openssl as an independent oracle.
func opensslDecrypt(t *testing.T, workload []byte) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(workload))
	if err != nil {
		t.Fatal(err)
	}
	key := modgearman.NewKey(testKey)
	cmd := exec.Command("openssl", "enc", "-d", "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(key[:]))
	cmd.Stdin = strings.NewReader(string(raw))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	return strings.TrimRight(string(out), "\x00")
}

// TestSendGRPC10000 sends 10,000 results in batches through a real bridge
// and verifies every field on the result queue, and a sample with openssl.
func TestSendGRPC10000(t *testing.T) {
	c := newCluster(t)
	writeFile(t, c.authz, senderAuthz, 0o644)
	_, addr := c.startBridge("bridge", "127.0.0.1:0")
	tlsFlags := c.senderFlags("sender", "sender-e2e")
	state := t.TempDir()

	const n = 10000
	var in strings.Builder
	for i := range n {
		if i%3 == 0 {
			fmt.Fprintf(&in, "e2e-%05d\t%d\tHOST %d|t=%dms;1;2\n", i, i%4, i, i)
		} else {
			fmt.Fprintf(&in, "e2e-%05d\tsvc-%d\t%d\tSVC %d\twith tab|x=%d\n", i, i%7, i%4, i, i)
		}
	}
	before := time.Now()
	code, out := c.send(in.String(), append([]string{"--bridge", addr, "--state-dir", state, "--batch-size", "1000"}, tlsFlags...)...)
	after := time.Now()
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d data packet(s) sent to host successfully.", n)) {
		t.Fatalf("send: exit %d\n%s", code, out)
	}
	results := c.collect("check_results", n, time.Minute)
	seen := make(map[string]bool, n)
	for k, r := range results {
		var i int
		if _, err := fmt.Sscanf(r.HostName, "e2e-%05d", &i); err != nil {
			t.Fatalf("host %q", r.HostName)
		}
		if seen[r.HostName] {
			t.Fatalf("%s arrived twice", r.HostName)
		}
		seen[r.HostName] = true
		want := modgearman.Result{
			Type: modgearman.ResultPassive, HostName: r.HostName, ReturnCode: i % 4,
			StartTime: r.StartTime, FinishTime: r.FinishTime, HasLatency: true,
			Source: "gearbridge sender @ sender-e2e", ExitedOK: true,
		}
		if i%3 == 0 {
			want.Output = fmt.Sprintf("HOST %d|t=%dms;1;2", i, i)
		} else {
			want.ServiceDescription = fmt.Sprintf("svc-%d", i%7)
			want.Output = fmt.Sprintf("SVC %d\twith tab|x=%d", i, i)
		}
		if r.StartTime.Before(before.Truncate(time.Second)) || r.FinishTime.After(after) || !r.StartTime.Equal(r.FinishTime) {
			t.Fatalf("result %d: times %v %v outside [%v, %v]", i, r.StartTime, r.FinishTime, before, after)
		}
		plain, err := c.codec.Decode(r.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := string(plain), string(want.MarshalPassive()); got != w {
			t.Fatalf("result %d payload\n got %q\nwant %q", i, got, w)
		}
		if k%500 == 0 {
			if text := opensslDecrypt(t, r.raw); !strings.HasPrefix(text, string(plain)) {
				t.Fatalf("openssl decrypts %q, our codec %q", text, plain)
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct results, want %d", len(seen), n)
	}
	if ents, _ := filepath.Glob(filepath.Join(state, "spool", "*.spool")); len(ents) != 0 {
		t.Fatalf("%d spool entries although the bridge was up", len(ents))
	}

	// Every other field over gRPC: long output, explicit times, latency,
	// active type.
	code, out = c.send("line one|a=1\nline two\nline three|b=2\n", append([]string{"--bridge", addr, "--state-dir", state,
		"--host", "e2e-flags", "--service", "multi line", "-r", "2", "--active",
		"--starttime=1700000000.123456", "--finishtime=1700000002.5", "--latency=1.25"}, tlsFlags...)...)
	if code != 0 || out != "" {
		t.Fatalf("send: exit %d\n%s", code, out)
	}
	r := c.collect("check_results", 1, 30*time.Second)[0]
	want := modgearman.Result{
		Type: modgearman.ResultActive, HostName: "e2e-flags", ServiceDescription: "multi line", ReturnCode: 2,
		StartTime: time.Unix(1700000000, 123456000), FinishTime: time.Unix(1700000002, 500000000),
		Latency: 1250 * time.Millisecond, HasLatency: true, Source: "gearbridge sender @ sender-e2e",
		Output: "line one|a=1\nline two\nline three|b=2",
	}
	text := opensslDecrypt(t, r.raw)
	if !strings.HasPrefix(text, string(want.MarshalPassive())) {
		t.Fatalf("openssl text\n got %q\nwant %q", text, want.MarshalPassive())
	}
}

// TestSendAuthorization: a sender identity that may not send for a host is
// refused for that result only; a worker certificate cannot use
// ResultService at all, and nothing of it is spooled.
func TestSendAuthorization(t *testing.T) {
	c := newCluster(t)
	writeFile(t, c.authz, senderAuthz, 0o644)
	_, addr := c.startBridge("bridge", "127.0.0.1:0")
	state := t.TempDir()

	limited := c.senderFlags("sender", "sender-limited")
	code, out := c.send("allowed-1\tsvc\t0\tok one\nforbidden-1\tsvc\t2\tnope\nallowed-2\t1\tok two\n",
		append([]string{"--bridge", addr, "--state-dir", state}, limited...)...)
	if code != 3 || !strings.Contains(out, `result for forbidden-1/svc refused: not allowed: identity "sender-limited" may not send results for host "forbidden-1"`) ||
		!strings.Contains(out, "2 data packet(s) sent to host successfully.") {
		t.Fatalf("limited sender: exit %d\n%s", code, out)
	}
	got := c.collect("check_results", 2, 30*time.Second)
	hosts := map[string]bool{got[0].HostName: true, got[1].HostName: true}
	if !hosts["allowed-1"] || !hosts["allowed-2"] {
		t.Fatalf("delivered %v", hosts)
	}
	c.assertQueueEmpty("check_results")

	workerTLS := c.senderFlags("worker", "w-not-a-sender")
	code, out = c.send("", append([]string{"--bridge", addr, "--state-dir", state, "--host", "allowed-3", "-m", "x"}, workerTLS...)...)
	if code != 3 || !strings.Contains(out, "PermissionDenied") || !strings.Contains(out, `role "worker"`) {
		t.Fatalf("worker certificate: exit %d\n%s", code, out)
	}
	if ents, _ := filepath.Glob(filepath.Join(state, "spool", "*.spool")); len(ents) != 0 {
		t.Fatalf("a refused call was spooled: %v", ents)
	}
	c.assertQueueEmpty("check_results")
}

// TestSendDaemonSpool: `send --daemon` takes results on its Unix socket
// while the bridge is down, spools them, and delivers them in order once
// the bridge is up.
func TestSendDaemonSpool(t *testing.T) {
	c := newCluster(t)
	writeFile(t, c.authz, senderAuthz, 0o644)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	state := t.TempDir()
	sock := filepath.Join(state, "send.sock")
	d := c.start("send-daemon", append([]string{"send", "--daemon", "--bridge", addr, "--state-dir", state,
		"--socket", sock, "--drain-interval", "200ms", "--batch-size", "1", "--log-level", "debug"}, c.senderFlags("sender", "sender-e2e")...)...)
	c.waitLog(d, `send daemon listening`, 20*time.Second)

	const n = 200
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "d-%03d\tsvc\t%d\tdaemon %d\n", i, i%4, i)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(in.String())); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.UnixConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	reply := make([]byte, 4096)
	k, _ := conn.Read(reply)
	conn.Close()
	if got := string(reply[:k]); got != fmt.Sprintf("%d data packet(s) accepted.\n", n) {
		t.Fatalf("daemon reply %q", got)
	}
	if ents, _ := filepath.Glob(filepath.Join(state, "spool", "*.spool")); len(ents) == 0 {
		t.Fatal("nothing spooled while the bridge is down")
	}
	c.startBridge("bridge", addr)
	results := c.collect("check_results", n, time.Minute)
	for i, r := range results {
		if r.HostName != fmt.Sprintf("d-%03d", i) || r.Output != fmt.Sprintf("daemon %d", i) || r.ReturnCode != i%4 {
			t.Fatalf("result %d out of order or wrong: %+v", i, r.Result)
		}
	}
	c.waitLog(d, `delivered spooled results`, 10*time.Second)
	d.stop(syscall.SIGTERM)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestDupServerGetsPassiveResults: with --dupserver, a batch of passive
// results sent through the bridge reaches both gearmand servers, each
// result once, as sent.
func TestDupServerGetsPassiveResults(t *testing.T) {
	c := newCluster(t)
	dup := gearmantest.Start(t)
	writeFile(t, c.authz, senderAuthz, 0o644)
	_, addr := c.startBridge("bridge", "127.0.0.1:0", "--dupserver", dup.Addr())
	tlsFlags := c.senderFlags("sender", "sender-e2e")
	const n = 50
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "dup-%03d\tsvc\t%d\tpassive %d\n", i, i%4, i)
	}
	code, out := c.send(in.String(), append([]string{"--bridge", addr, "--state-dir", t.TempDir(), "--batch-size", "100"}, tlsFlags...)...)
	if code != 0 {
		t.Fatalf("send: exit %d\n%s", code, out)
	}
	check := func(where string, got []result) {
		t.Helper()
		seen := map[string]bool{}
		for _, r := range got {
			var i int
			if _, err := fmt.Sscanf(r.HostName, "dup-%03d", &i); err != nil || seen[r.HostName] {
				t.Fatalf("%s: unexpected or repeated host %q", where, r.HostName)
			}
			seen[r.HostName] = true
			if r.Type != modgearman.ResultPassive || r.ReturnCode != i%4 || r.Output != fmt.Sprintf("passive %d", i) {
				t.Errorf("%s: %s: type %q rc %d output %q", where, r.HostName, r.Type, r.ReturnCode, r.Output)
			}
		}
		if len(seen) != n {
			t.Fatalf("%s: %d of %d results", where, len(seen), n)
		}
	}
	check("primary", c.collect("check_results", n, time.Minute))
	check("dupserver", c.collectFrom(dup.Addr(), "check_results", time.Minute, func(got []result) bool { return len(got) >= n }))
}
