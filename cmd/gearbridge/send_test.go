package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/sender"
)

const sendKey = "send_test_key_42"

// runSendCmd runs one command line with stdin.
func runSendCmd(t *testing.T, argv0, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), argv0, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// grabResults takes n jobs from queue on server and returns their raw
// workloads in queue order.
func grabResults(t *testing.T, server, queue string, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, server, gearman.WorkerOptions{ClientID: "send-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(queue); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(out) < n {
		j, err := wc.Grab(ctx)
		if err != nil {
			t.Fatalf("got %d of %d results from %s: %v", len(out), n, queue, err)
		}
		if err := wc.Complete(j.Handle, nil); err != nil {
			t.Fatal(err)
		}
		out = append(out, j.Data)
	}
	// Nothing more may be queued.
	extra, err := wc.TryGrab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		t.Fatalf("queue %s holds more than %d results: %q", queue, n, extra.Data)
	}
	return out
}

// checkPayload decodes raw with codec and compares it byte for byte with
// want in send_gearman's form; a zero Start/Finish in want means "now",
// i.e. within [before, after].
func checkPayload(t *testing.T, codec *modgearman.Codec, raw []byte, want sender.Result, before, after time.Time) {
	t.Helper()
	plain, err := codec.Decode(raw)
	if err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	got, err := modgearman.ParseResult(plain)
	if err != nil {
		t.Fatalf("parse %q: %v", plain, err)
	}
	for _, tm := range []struct {
		w *time.Time
		g time.Time
	}{{&want.Start, got.StartTime}, {&want.Finish, got.FinishTime}} {
		if tm.w.IsZero() {
			if tm.g.Before(before.Truncate(time.Microsecond)) || tm.g.After(after) {
				t.Errorf("time %v is not between %v and %v", tm.g, before, after)
			}
			*tm.w = tm.g
		}
	}
	if wantText := want.Classic().MarshalPassive(); string(plain) != string(wantText) {
		t.Errorf("payload\n got %q\nwant %q", plain, wantText)
	}
}

func TestSendClassicFlagsAgainstGearmand(t *testing.T) {
	gm := gearmantest.Start(t)
	gm2 := gearmantest.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	writeTestFile(t, keyFile, "keyfile_secret_0123\nsecond line\n")
	conf := filepath.Join(dir, "send_gearman.cfg")
	writeTestFile(t, conf, fmt.Sprintf("server=%s\nkey=%s\nresult_queue=conf_results\nencryption=yes\n", gm.Addr(), sendKey))
	xml, err := os.ReadFile("../../sender/testdata/multi.xml")
	if err != nil {
		t.Fatal(err)
	}
	enc := func(key string) *modgearman.Codec {
		c, err := modgearman.NewCodec(key, key != "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t0 := time.Unix(1700000000, 250000000)
	t1 := time.Unix(1700000001, 500000000)
	srv := "--server=" + gm.Addr()
	type sent struct {
		server string
		want   sender.Result
	}
	tests := []struct {
		name   string
		argv0  string
		args   []string
		stdin  string
		codec  *modgearman.Codec
		queue  string // default: the test's own
		want   []sent
		stdout string
	}{
		{
			name: "long flags with =",
			args: []string{srv, "--key=" + sendKey, "--host=web1", "--service=http", "--message=HTTP OK|t=1s", "--returncode=1",
				"--starttime=1700000000.25", "--finishtime=1700000001.5", "--latency=0.75"},
			codec: enc(sendKey),
			want: []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "http", ReturnCode: 1, Output: "HTTP OK|t=1s",
				Start: t0, Finish: t1, Latency: 750 * time.Millisecond}}},
		},
		{
			name:  "short flags with =",
			args:  []string{srv, "--key", sendKey, "--host", "web1", "-m=short eq", "-r=2"},
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", ReturnCode: 2, Output: "short eq"}}},
		},
		{
			name:  "short flags separated",
			args:  []string{"--server", gm.Addr(), "--key", sendKey, "--host", "web1", "--service", "disk", "-m", "two words", "-r", "3"},
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "disk", ReturnCode: 3, Output: "two words"}}},
		},
		{
			name:  "short flags joined",
			args:  []string{srv, "--key=" + sendKey, "--host=web1", "-mjoined", "-r0"},
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "joined"}}},
		},
		{
			name:  "active",
			args:  []string{srv, "--key=" + sendKey, "--host=web1", "--service=x", "-m", "act", "--active"},
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "x", Output: "act", Active: true}}},
		},
		{
			name:  "keyfile (first line)",
			args:  []string{srv, "--keyfile=" + keyFile, "--host=web1", "-m", "kf"},
			codec: enc("keyfile_secret_0123"),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "kf"}}},
		},
		{
			name:  "encryption=no without key",
			args:  []string{srv, "--encryption=no", "--host=web1", "-m", "clear"},
			codec: enc(""),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "clear"}}},
		},
		{
			name:  "result-queue, dashed",
			args:  []string{srv, "--encryption=no", "--result-queue=send_results_dashed", "--host=web1", "-m", "dashed"},
			queue: "send_results_dashed",
			codec: enc(""),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "dashed"}}},
		},
		{
			name:  "encryption=no with key",
			args:  []string{srv, "--key=" + sendKey, "--encryption=no", "--host=web1", "-m", "clear too"},
			codec: enc(""),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "clear too"}}},
		},
		{
			name:  "classic config file",
			args:  []string{"--config=" + conf, "--host=web1", "-m", "from conf"},
			codec: enc(sendKey),
			queue: "conf_results",
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "from conf"}}},
		},
		{
			name:  "dupserver gets a copy",
			args:  []string{srv, "--dupserver=" + gm2.Addr(), "--key=" + sendKey, "--host=web1", "-m", "dup"},
			codec: enc(sendKey),
			want: []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "dup"}},
				{gm2.Addr(), sender.Result{Host: "web1", Output: "dup"}}},
		},
		{
			name:  "mode 2: stdin is the output",
			args:  []string{srv, "--key=" + sendKey, "--host=web1", "--service=log", "-r", "1", "--timeout=5"},
			stdin: "first line|p=1\nlong line 2\nlong line 3\n\n",
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "log", ReturnCode: 1, Output: "first line|p=1\nlong line 2\nlong line 3"}}},
		},
		{
			name:  "mode 3: lines with TAB",
			args:  []string{srv, "--key=" + sendKey, "-t", "5"},
			stdin: "web1\thttp\t0\tOK\there\nweb2\t2\tDOWN\r\n\n",
			codec: enc(sendKey),
			want: []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "http", Output: "OK\there"}},
				{gm.Addr(), sender.Result{Host: "web2", ReturnCode: 2, Output: "DOWN"}}},
			stdout: "2 data packet(s) sent to host successfully.\n",
		},
		{
			name:   "mode 3: delimiter flag",
			args:   []string{srv, "--key=" + sendKey, "-d", ";", "--starttime=1700000000.25", "--finishtime=1700000001.5"},
			stdin:  "web1;;http;1;warn;x\n",
			codec:  enc(sendKey),
			want:   []sent{{gm.Addr(), sender.Result{Host: "web1", Service: "http", ReturnCode: 1, Output: "warn;x", Start: t0, Finish: t1}}},
			stdout: "1 data packet(s) sent to host successfully.\n",
		},
		{
			name:   "mode 3: delimiter with =",
			args:   []string{srv, "--key=" + sendKey, "--delimiter=|"},
			stdin:  "web1|0|fine\n",
			codec:  enc(sendKey),
			want:   []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "fine"}}},
			stdout: "1 data packet(s) sent to host successfully.\n",
		},
		{
			name:  "invoked as send_gearman",
			argv0: "/usr/local/bin/send_gearman",
			args:  []string{srv, "--key=" + sendKey, "--host=web1", "-m=compat"},
			codec: enc(sendKey),
			want:  []sent{{gm.Addr(), sender.Result{Host: "web1", Output: "compat"}}},
		},
		{
			name:   "send_multi",
			args:   []string{srv, "--multi", "--host=db1"},
			stdin:  string(xml),
			codec:  enc(""),
			stdout: "send_multi OK: 2 check_multi child check(s) submitted\n",
			want: []sent{
				{gm.Addr(), sender.Result{Host: "db1", Service: "disk", ReturnCode: 2, Source: sender.SourceSendMulti,
					Output: "DISK CRITICAL - free space: / 1024 MB (3% inode=90%) & /var <5%> [warning: stale NFS 'handle']|disk::check_disk::/=30000MB;28000;29000;0;31000 /var=900MB;800;850;0;1000"}},
				{gm.Addr(), sender.Result{Host: "db1", Service: "load", Source: sender.SourceSendMulti,
					Output: "OK - load average: 0.10, 0.05, 0.01 | pipe in text|'load::check_load::load 1'=0.100;5;10;0; 'load 5'=0.050;4;8;0;"}},
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue := tt.queue
			args := tt.args
			if queue == "" {
				queue = fmt.Sprintf("send_results_%d", i)
				args = append(args, "--result_queue="+queue)
			}
			argv0 := tt.argv0
			if argv0 == "" {
				argv0 = "gearbridge"
				args = append([]string{"send"}, args...)
			}
			before := time.Now()
			code, out, errOut := runSendCmd(t, argv0, tt.stdin, args...)
			after := time.Now()
			if code != 0 {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
			}
			if out != tt.stdout {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
			byServer := map[string][]sender.Result{}
			var servers []string
			for _, s := range tt.want {
				if _, ok := byServer[s.server]; !ok {
					servers = append(servers, s.server)
				}
				byServer[s.server] = append(byServer[s.server], s.want)
			}
			for _, s := range servers {
				want := byServer[s]
				raws := grabResults(t, s, queue, len(want))
				for k, raw := range raws {
					w := want[k]
					if tt.name == "send_multi" {
						// start = now − runtime, finish = now.
						plain, _ := tt.codec.Decode(raw)
						r, err := modgearman.ParseResult(plain)
						if err != nil {
							t.Fatal(err)
						}
						rt := []time.Duration{250 * time.Millisecond, 10 * time.Millisecond}[k]
						if got := r.FinishTime.Sub(r.StartTime); got != rt {
							t.Errorf("child %d: finish-start = %v, want %v", k, got, rt)
						}
						w.Start = r.StartTime
					}
					checkPayload(t, tt.codec, raw, w, before, after)
				}
			}
		})
	}
}

func TestSendErrorsExit3(t *testing.T) {
	gm := gearmantest.Start(t)
	srv := "--server=" + gm.Addr()
	closed := freeAddr(t)
	tests := []struct {
		name  string
		args  []string
		stdin io.Reader
		want  string
	}{
		{"return code out of range", []string{srv, "--host=h", "-m=x", "-r=4"}, nil, "out of range 0..3"},
		{"return code not a number", []string{srv, "--host=h", "-m=x", "-r", "abc"}, nil, "returncode"},
		{"unknown flag", []string{srv, "--frob"}, nil, "unknown flag"},
		{"no server", []string{"--host=h", "-m=x"}, nil, "no server given"},
		{"no key", []string{srv, "--host=h", "-m=x"}, nil, "encryption is on but no key is given"},
		{"key and keyfile", []string{srv, "--key=a", "--keyfile=/nonexistent", "--host=h", "-m=x"}, nil, "key"},
		{"gearmand down", []string{"--server=" + closed, "--key=k", "--host=h", "-m=x", "-t", "2"}, nil, "failed to send result!"},
		{"stdin timeout", []string{srv, "--key=k", "--host=h", "--timeout=1"}, blockingReader{}, "got no input after 1 seconds"},
		{"bad line", []string{srv, "--key=k"}, strings.NewReader("h\t0\tok\nbroken\n"), "line 2"},
		{"multi without host", []string{srv, "--multi"}, strings.NewReader("<CHILD></CHILD>"), "--multi needs --host"},
		{"multi without children", []string{srv, "--multi", "--host=h"}, strings.NewReader("<x/>"), "send_multi UNKNOWN: no check_multi child checks found"},
		{"dupserver with bridge", []string{"--bridge=127.0.0.1:1", "--dupserver=x", "--host=h", "-m=x"}, nil, "--dupserver applies"},
		{"bridge without tls", []string{"--bridge=127.0.0.1:1", "--host=h", "-m=x"}, nil, "--tls-ca"},
		{"negative retries", []string{srv, "--retries=-1", "--host=h", "-m=x"}, nil, "--retries -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.stdin
			if in == nil {
				in = strings.NewReader("")
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), "gearbridge", append([]string{"send"}, tt.args...), in, &out, &errOut)
			if code != exitUnknown {
				t.Fatalf("exit %d, want 3\nstdout %q\nstderr %q", code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), tt.want) || !strings.Contains(out.String()+errOut.String(), "UNKNOWN") {
				t.Fatalf("output lacks %q:\nstdout %q\nstderr %q", tt.want, out.String(), errOut.String())
			}
		})
	}
}

// blockingReader never returns (a terminal nobody types into).
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// testPKI is a CA with a bridge certificate and client certificates.
type testPKI struct {
	dir string
	ca  *certs.CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(filepath.Join(dir, "ca"), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: dir, ca: ca}
	crt, key, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, "bridge", crt, key)
	return p
}

func (p *testPKI) write(t *testing.T, name string, crt, key []byte) {
	t.Helper()
	if err := certs.WriteFileAtomic(filepath.Join(p.dir, name+".key"), key, certs.KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFileAtomic(filepath.Join(p.dir, name+".crt"), crt, certs.CertFileMode); err != nil {
		t.Fatal(err)
	}
}

// client issues a client certificate and returns the TLS flags for it.
func (p *testPKI) client(t *testing.T, role certs.Role, name string) []string {
	t.Helper()
	crt, key, err := p.ca.IssueClient(role, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, name, crt, key)
	return []string{"--tls-ca=" + filepath.Join(p.dir, "ca", certs.CACertFile),
		"--tls-cert=" + filepath.Join(p.dir, name+".crt"), "--tls-key=" + filepath.Join(p.dir, name+".key")}
}

// startTestBridge serves a bridge in process on addr until the test ends
// or stop is called.
func startTestBridge(t *testing.T, p *testPKI, gmAddr, addr, resultQueue string) (stop func()) {
	t.Helper()
	cfg := bridge.DefaultConfig()
	cfg.Servers, cfg.Key, cfg.ResultQueue = []string{gmAddr}, sendKey, resultQueue
	cfg.Authz = &bridge.Authz{Rules: []bridge.Rule{{Identity: "sender-*", Role: bridge.RoleSender, Hosts: []string{"*"}}}}
	b, err := bridge.New(cfg, bridge.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := certs.NewReloader(filepath.Join(p.dir, "bridge.crt"), filepath.Join(p.dir, "bridge.key"), filepath.Join(p.dir, "ca", certs.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	var lis net.Listener
	for deadline := time.Now().Add(10 * time.Second); ; {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, lis, rl.ServerConfig(nil)) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("bridge: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestSendSpoolWhileBridgeDown: with the bridge down, 1,000 runs each exit
// 0 with their result spooled; when the bridge is back, the next run
// delivers the spool in order before its own result, none lost or
// duplicated. A full spool refuses with a clear message.
func TestSendSpoolWhileBridgeDown(t *testing.T) {
	gm := gearmantest.Start(t)
	p := newTestPKI(t)
	tlsFlags := p.client(t, certs.RoleSender, "sender-1")
	addr := freeAddr(t)
	state := t.TempDir()
	base := append([]string{"send", "--bridge=" + addr, "--state-dir=" + state, "--batch-size=1", "--timeout=5"}, tlsFlags...)
	const n = 1000
	for i := range n {
		args := append(base, fmt.Sprintf("--host=h%04d", i), "--service=svc", fmt.Sprintf("-m=out %d", i), fmt.Sprintf("-r=%d", i%4))
		code, out, errOut := runSendCmd(t, "gearbridge", "", args...)
		if code != 0 || !strings.Contains(out, "1 result(s) spooled in "+filepath.Join(state, "spool")) {
			t.Fatalf("run %d: exit %d\nstdout %q\nstderr %q", i, code, out, errOut)
		}
	}
	// Full: a spool limited to what it holds refuses the next result.
	code, out, _ := runSendCmd(t, "gearbridge", "", append(base, "--spool-max-bytes=1000", "--host=full", "-m=x")...)
	if code != exitUnknown || !strings.Contains(out, "spool is full") || !strings.Contains(out, "NOT spooled") {
		t.Fatalf("full spool: exit %d stdout %q", code, out)
	}

	startTestBridge(t, p, gm.Addr(), addr, "spool_results")
	code, out, errOut := runSendCmd(t, "gearbridge", "", append(base, "--host=last", "-m=last")...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d spooled result(s) delivered first.", n)) {
		t.Fatalf("drain run: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	codec, _ := modgearman.NewCodec(sendKey, true)
	raws := grabResults(t, gm.Addr(), "spool_results", n+1)
	for i, raw := range raws {
		plain, err := codec.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			t.Fatal(err)
		}
		wantHost, wantOut, wantRC, wantSvc := fmt.Sprintf("h%04d", i), fmt.Sprintf("out %d", i), i%4, "svc"
		if i == n {
			wantHost, wantOut, wantRC, wantSvc = "last", "last", 0, ""
		}
		if r.HostName != wantHost || r.Output != wantOut || r.ReturnCode != wantRC || r.ServiceDescription != wantSvc || !r.IsPassive() {
			t.Fatalf("result %d is %+v, want host %s", i, r, wantHost)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(state, "spool", "*.spool")); len(ents) != 0 {
		t.Fatalf("%d entries left in the spool", len(ents))
	}
}

// TestSendRetriesUntilGearmandIsBack: with --retries, a send that finds
// gearmand down keeps trying every --retry-interval and delivers once it is
// back; the version flag answers as send_gearman's does.
func TestSendRetriesUntilGearmandIsBack(t *testing.T) {
	gm := gearmantest.Start(t)
	gm.Stop()
	type res struct {
		code           int
		stdout, stderr string
	}
	done := make(chan res, 1)
	go func() {
		code, out, errOut := runSendCmd(t, "send_gearman", "", "--server="+gm.Addr(), "--encryption=no",
			"--retries=30", "--retry-interval=0.2", "-t=1", "--host=back", "-m=OK", "-r=0")
		done <- res{code, out, errOut}
	}()
	time.Sleep(time.Second)
	select {
	case r := <-done:
		t.Fatalf("send gave up while gearmand was down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	default:
	}
	gm.Restart(t)
	var r res
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("send did not finish after gearmand came back")
	}
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "retrying") {
		t.Fatalf("no retry logged:\n%s", r.stderr)
	}
	codec, _ := modgearman.NewCodec("", false)
	raw := grabResults(t, gm.Addr(), "check_results", 1)
	plain, err := codec.Decode(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := modgearman.ParseResult(plain); err != nil || got.HostName != "back" || got.Output != "OK" {
		t.Fatalf("result %+v, %v", got, err)
	}

	code, out, _ := runSendCmd(t, "send_gearman", "", "-V")
	if code != 0 || !strings.HasPrefix(out, "send_gearman: gearbridge ") {
		t.Fatalf("-V: exit %d, %q", code, out)
	}
}

// TestSendKeepsBytesThroughSpool: ISO-8859-1 host names, services and
// output, spooled while the bridge is down, reach gearmand byte for byte
// once it is back.
func TestSendKeepsBytesThroughSpool(t *testing.T) {
	gm := gearmantest.Start(t)
	p := newTestPKI(t)
	tlsFlags := p.client(t, certs.RoleSender, "sender-1")
	addr := freeAddr(t)
	state := t.TempDir()
	base := append([]string{"send", "--bridge=" + addr, "--state-dir=" + state, "--timeout=5"}, tlsFlags...)
	want := []sender.Result{
		{Host: "h\xf4te", Service: "caf\xe9", ReturnCode: 1, Output: "r\xe9ponse lente|t=1s\nd\xe9tail \xff"},
		{Host: "h\xf4te", Service: "disque", ReturnCode: 3, Output: "plein \xe0 99%"},
		{Host: "web1", Service: "Temp\xe9rature", ReturnCode: 2, Output: "42\xb0C"},
		{Host: "last", Output: "d\xe9j\xe0 vu"},
	}
	for _, run := range []struct {
		name, stdin string
		args        []string
	}{
		{"stdin is the output", "r\xe9ponse lente|t=1s\nd\xe9tail \xff\n", []string{"--host=h\xf4te", "--service=caf\xe9", "-r=1"}},
		{"stdin lines", "h\xf4te\tdisque\t3\tplein \xe0 99%\n", nil},
		{"flags", "", []string{"--host=web1", "--service=Temp\xe9rature", "-m=42\xb0C", "-r=2"}},
	} {
		code, out, errOut := runSendCmd(t, "gearbridge", run.stdin, append(base, run.args...)...)
		if code != 0 {
			t.Fatalf("%s while the bridge is down: exit %d\nstdout %q\nstderr %q", run.name, code, out, errOut)
		}
	}

	startTestBridge(t, p, gm.Addr(), addr, "latin1_results")
	code, out, errOut := runSendCmd(t, "gearbridge", "", append(base, "--host=last", "-m=d\xe9j\xe0 vu")...)
	if code != 0 || !strings.Contains(out, "3 spooled result(s) delivered first.") {
		t.Fatalf("drain run: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	// The bridge may queue the results of one call in any order: they are
	// matched by host and service.
	byKey := map[string]sender.Result{}
	for _, w := range want {
		byKey[w.Host+"/"+w.Service] = w
	}
	codec, _ := modgearman.NewCodec(sendKey, true)
	for _, raw := range grabResults(t, gm.Addr(), "latin1_results", len(want)) {
		plain, err := codec.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			t.Fatal(err)
		}
		key := r.HostName + "/" + r.ServiceDescription
		w, ok := byKey[key]
		if !ok {
			t.Errorf("unexpected result for %q with output %q", key, r.Output)
			continue
		}
		delete(byKey, key)
		if r.Output != w.Output || r.ReturnCode != w.ReturnCode {
			t.Errorf("%q: rc %d output %q, want rc %d output %q", key, r.ReturnCode, r.Output, w.ReturnCode, w.Output)
		}
	}
}

// TestSendReportsSentAndSpooled: send_gearman's "data packet(s) sent"
// counts only what the receiver took; what was spooled is said apart.
func TestSendReportsSentAndSpooled(t *testing.T) {
	gm := gearmantest.Start(t)
	p := newTestPKI(t)
	tlsFlags := p.client(t, certs.RoleSender, "sender-1")
	addr := freeAddr(t)
	state := t.TempDir()
	spoolDir := filepath.Join(state, "spool")
	base := append([]string{"send", "--bridge=" + addr, "--state-dir=" + state, "--timeout=5"}, tlsFlags...)
	xml, err := os.ReadFile("../../sender/testdata/multi.xml")
	if err != nil {
		t.Fatal(err)
	}
	spooled := func(n int) string {
		return fmt.Sprintf("%d result(s) spooled in %s (receiver unreachable); they will be delivered by the next run or by gearbridge send --daemon.\n", n, spoolDir)
	}
	steps := []struct {
		name     string
		bridgeUp bool
		stdin    string
		args     []string
		stdout   string
	}{
		{"lines, bridge down", false, "web1\thttp\t0\tOK\nweb2\t2\tDOWN\n", nil,
			spooled(2) + "0 data packet(s) sent to host successfully, 2 spooled for later delivery.\n"},
		{"multi, bridge down", false, string(xml), []string{"--multi", "--host=db1"},
			spooled(2) + "send_multi OK: 0 check_multi child check(s) submitted, 2 spooled for later delivery\n"},
		{"lines, bridge up", true, "web3\t0\tUP\n", nil,
			"4 spooled result(s) delivered first.\n1 data packet(s) sent to host successfully.\n"},
		{"multi, bridge up", true, string(xml), []string{"--multi", "--host=db2"},
			"send_multi OK: 2 check_multi child check(s) submitted\n"},
	}
	up := false
	for _, st := range steps {
		if st.bridgeUp && !up {
			startTestBridge(t, p, gm.Addr(), addr, "report_results")
			up = true
		}
		code, out, errOut := runSendCmd(t, "gearbridge", st.stdin, append(base, st.args...)...)
		if code != 0 || out != st.stdout {
			t.Fatalf("%s: exit %d\nstdout %q\nwant   %q\nstderr %q", st.name, code, out, st.stdout, errOut)
		}
	}
	grabResults(t, gm.Addr(), "report_results", 7)
}

// TestSendWithoutKeyExit3: with encryption on (the default) and no key,
// send refuses like send_gearman: exit 3, the UNKNOWN line once on stdout,
// nothing on stderr, and nothing reaches gearmand. --encryption=no sends;
// --bridge needs no key at all (TestSendSpoolWhileBridgeDown).
func TestSendWithoutKeyExit3(t *testing.T) {
	gm := gearmantest.Start(t)
	for _, argv0 := range []string{"gearbridge", "send_gearman"} {
		t.Run(argv0, func(t *testing.T) {
			args := []string{"--server=" + gm.Addr(), "--result_queue=nokey_results", "--host=h", "-m=x"}
			if argv0 == "gearbridge" {
				args = append([]string{"send"}, args...)
			}
			code, out, errOut := runSendCmd(t, argv0, "", args...)
			if code != exitUnknown {
				t.Fatalf("exit %d, want 3\nstdout %q\nstderr %q", code, out, errOut)
			}
			want := "send_gearman UNKNOWN: encryption is on but no key is given (--key, --keyfile or --encryption=no)\n"
			if out != want || errOut != "" {
				t.Errorf("stdout %q stderr %q, want stdout %q and nothing else", out, errOut, want)
			}
		})
	}
	code, out, errOut := runSendCmd(t, "gearbridge", "", "send", "--server="+gm.Addr(), "--result_queue=nokey_results", "--encryption=no", "--host=h", "-m=x")
	if code != 0 {
		t.Fatalf("--encryption=no: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	// Exactly the one result of the --encryption=no run is queued.
	grabResults(t, gm.Addr(), "nokey_results", 1)
}

// TestSendErrorPrintedOnce: a failing send says why once, on stdout, in
// send_gearman's words; stderr does not repeat it (nor do the Gearman
// client's retry warnings), and neither does a bad flag.
func TestSendErrorPrintedOnce(t *testing.T) {
	closed := freeAddr(t)
	code, out, errOut := runSendCmd(t, "gearbridge", "", "send", "--server="+closed, "--key="+sendKey, "--host=h", "-m=x", "-t", "1")
	if code != exitUnknown {
		t.Fatalf("exit %d, want 3", code)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "send_gearman UNKNOWN: failed to send result!") || errOut != "" {
		t.Errorf("the error is not printed exactly once on stdout:\nstdout %q\nstderr %q", out, errOut)
	}
	code, out, errOut = runSendCmd(t, "gearbridge", "", "send", "--frob")
	if code != exitUnknown || out != "send_gearman UNKNOWN: unknown flag: --frob\n" || errOut != "" {
		t.Errorf("flag error: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

// TestSendOneShotSpoolIsLazy: a one-shot run that delivers at once
// creates no spool directory; one that must spool creates it in the same
// place `send --daemon` uses by default, <state-dir>/spool.
func TestSendOneShotSpoolIsLazy(t *testing.T) {
	gm := gearmantest.Start(t)
	p := newTestPKI(t)
	tlsFlags := p.client(t, certs.RoleSender, "sender-lazy")
	addr := freeAddr(t)
	state := t.TempDir()
	spoolDir := filepath.Join(state, "spool")
	base := append([]string{"send", "--bridge=" + addr, "--state-dir=" + state, "--timeout=5"}, tlsFlags...)
	stop := startTestBridge(t, p, gm.Addr(), addr, "lazy_results")
	code, out, errOut := runSendCmd(t, "gearbridge", "", append(base, "--host=h1", "-m=x")...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	if _, err := os.Stat(spoolDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a delivered one-shot run left %s behind (stat: %v)", spoolDir, err)
	}
	grabResults(t, gm.Addr(), "lazy_results", 1)
	stop()
	code, out, errOut = runSendCmd(t, "gearbridge", "", append(base, "--host=h2", "-m=y")...)
	if code != 0 || !strings.Contains(out, "spooled in "+spoolDir) {
		t.Fatalf("bridge down: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	if ents, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool")); len(ents) != 1 {
		t.Fatalf("%d spool entries in %s, want 1", len(ents), spoolDir)
	}
}

// TestSendHelpShowsClassicTypes: the classic numeric options show as
// numbers in the help, though the classic parser reads them.
func TestSendHelpShowsClassicTypes(t *testing.T) {
	code, out, _ := runSendCmd(t, "gearbridge", "", "send", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-r, --returncode int", "-t, --timeout int", "--starttime float", "--finishtime float", "--latency float"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
