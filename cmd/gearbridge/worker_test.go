package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/modgearman/classicconf"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
	"github.com/gearbridge/gearbridge/worker"
)

// parseWorkerFlags parses args the way `gearbridge worker` does, without
// running the worker, and returns the resulting options and config.
func parseWorkerFlags(t *testing.T, args ...string) (workerOptions, []string, worker.Config, error) {
	t.Helper()
	root := newRootCmd(streams{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	argv, err := classicWorkerArgs(root, append([]string{"worker"}, args...))
	if err != nil {
		return workerOptions{}, nil, worker.Config{}, err
	}
	cmd, rest, err := root.Find(argv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	file, err := cmd.Flags().GetString("config")
	if err != nil {
		t.Fatal(err)
	}
	opts, notes, err := loadWorkerOptions(cmd.Flags(), file)
	if err != nil {
		return opts, notes, worker.Config{}, err
	}
	cfg, err := opts.workerConfig(func() (string, error) { return "thishost", nil })
	return opts, notes, cfg, err
}

var tlsFlags = []string{"--tls-ca", "ca.crt", "--tls-cert", "w.crt", "--tls-key", "w.key"}

func TestWorkerFlagsToConfig(t *testing.T) {
	args := append([]string{
		"--bridge", "b1:4731, b2:4731", "--identifier", "w9",
		"--hosts", "--services", "--eventhandler", "--notifications",
		"--hostgroups", "a,b", "--servicegroups", "x",
		"--max-workers", "7", "--job-timeout", "30s", "--max-age", "5m",
		"--load-limit1", "3.5", "--load-limit15", "8", "--timeout-return", "2",
		"--show-error-output=false", "--restrict-path", "/usr/lib/nagios/plugins", "--drain-timeout", "10s",
	}, tlsFlags...)
	_, _, cfg, err := parseWorkerFlags(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	want := worker.DefaultConfig()
	want.Bridges = []string{"b1:4731", "b2:4731"}
	want.Identifier = "w9"
	want.Queues = []string{"host", "service", "eventhandler", "notification", "hostgroup_a", "hostgroup_b", "servicegroup_x"}
	want.Slots = 7
	want.JobTimeout = 30 * time.Second
	want.MaxAge = 5 * time.Minute
	want.LoadLimit1, want.LoadLimit15 = 3.5, 8
	want.TimeoutReturn = 2
	want.ShowErrorOutput = false
	want.RestrictPath = []string{"/usr/lib/nagios/plugins"}
	want.DrainTimeout = 10 * time.Second
	assertWorkerConfig(t, cfg, want)
}

func TestWorkerDefaults(t *testing.T) {
	_, _, cfg, err := parseWorkerFlags(t, append([]string{"--servicegroups", "web"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := worker.DefaultConfig()
	want.Bridges = []string{"localhost:4731"}
	want.Identifier = "thishost" // the host name
	want.Queues = []string{"servicegroup_web"}
	assertWorkerConfig(t, cfg, want)
}

func assertWorkerConfig(t *testing.T, got, want worker.Config) {
	t.Helper()
	if !slices.Equal(got.Bridges, want.Bridges) || !slices.Equal(got.Queues, want.Queues) ||
		!slices.Equal(got.RestrictPath, want.RestrictPath) {
		t.Errorf("bridges %q queues %q restrict %q; want %q %q %q",
			got.Bridges, got.Queues, got.RestrictPath, want.Bridges, want.Queues, want.RestrictPath)
	}
	got.Bridges, got.Queues, got.RestrictPath = nil, nil, nil
	want.Bridges, want.Queues, want.RestrictPath = nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config\n got %+v\nwant %+v", got, want)
	}
}

func TestWorkerUsageErrors(t *testing.T) {
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	writeTestFile(t, unknownKey, "services: yes\nmax-wrokers: 3\n")
	badConf := filepath.Join(dir, "bad.conf")
	writeTestFile(t, badConf, "services=yes\nmax-worker=lots\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no queue", append([]string{"worker", "--bridge", "b:4731"}, tlsFlags...), "a worker needs at least one queue"},
		{"no TLS", []string{"worker", "--services"}, "--tls-ca, --tls-cert and --tls-key are required"},
		{"bad value", append([]string{"worker", "--services", "--max-workers", "0"}, tlsFlags...), "max-workers"},
		{"unknown YAML key", append([]string{"worker", "--config", unknownKey}, tlsFlags...), "max-wrokers"},
		{"bad classic value", append([]string{"worker", "--config", badConf}, tlsFlags...), "bad.conf:2"},
		{"missing certificate", append([]string{"worker", "--services"}, tlsFlags...), "worker TLS"},
		{"arguments", []string{"worker", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir) // the TLS file names of tlsFlags do not exist there
			code, out, errOut := runCmd(t, "gearbridge", tt.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("stdout %q stderr %q, want %q in stderr", out, errOut, tt.want)
			}
		})
	}
}

func TestWorkerYAMLConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "worker.yaml")
	writeTestFile(t, file, `bridge: [b1:4731, b2:4731]
identifier: site-a
services: yes
hostgroups: [dmz]
max-workers: 4
job-timeout: 45s
load-limit5: 6
tls-ca: ca.crt
tls-cert: w.crt
tls-key: w.key
`)
	_, _, cfg, err := parseWorkerFlags(t, "--config", file, "--max-workers", "12")
	if err != nil {
		t.Fatal(err)
	}
	want := worker.DefaultConfig()
	want.Bridges = []string{"b1:4731", "b2:4731"}
	want.Identifier = "site-a"
	want.Queues = []string{"service", "hostgroup_dmz"}
	want.Slots = 12 // the flag wins over the file
	want.JobTimeout = 45 * time.Second
	want.LoadLimit5 = 6
	assertWorkerConfig(t, cfg, want)
}

func TestWorkerClassicConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mod_gearman_worker.conf")
	writeTestFile(t, file, `# classic worker configuration
server=localhost:4730
key=should_not_be_needed
identifier=classic-w
services=yes
eventhandler=yes
hostgroups=dmz,lan
servicegroup=db
max-worker=5
job_timeout=30
max-age=600
load_limit1=4
timeout_return=2
show_error_output=no
restrict_path=/usr/lib/nagios/plugins
`)
	opts, _, cfg, err := parseWorkerFlags(t, append([]string{"--config", file, "--max-workers", "9", "--bridge", "b:4731"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := worker.DefaultConfig()
	want.Bridges = []string{"b:4731"}
	want.Identifier = "classic-w"
	want.Queues = []string{"service", "eventhandler", "hostgroup_dmz", "hostgroup_lan", "servicegroup_db"}
	want.Slots = 9 // the flag wins over max-worker=5
	want.JobTimeout = 30 * time.Second
	want.MaxAge = 10 * time.Minute
	want.LoadLimit1 = 4
	want.TimeoutReturn = 2
	want.ShowErrorOutput = false
	want.RestrictPath = []string{"/usr/lib/nagios/plugins"}
	want.RestrictCommandCharacters = classicconf.Defaults().RestrictCommandCharacters
	assertWorkerConfig(t, cfg, want)
	wantUnused := "server: a remote worker talks to --bridge, and the bridge to gearmand and its dupservers (or use --transport=gearman); " +
		"key: the bridge decrypts jobs, a remote worker never needs the key"
	if opts.classicUnused != wantUnused {
		t.Errorf("unused classic options\n got %q\nwant %q", opts.classicUnused, wantUnused)
	}
}

// TestWorkerCommandServesAndDrains runs `gearbridge worker` against an
// in-process WorkerService with real certificates: the hello arrives over
// mutual TLS, a job runs, and cancelling the context (SIGTERM in main)
// drains the worker, which exits 0 once its result is acknowledged.
func TestWorkerCommandServesAndDrains(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.InitCA(filepath.Join(dir, "ca"), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, certPEM, keyPEM []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dir, name+".crt"), string(certPEM))
		writeTestFile(t, filepath.Join(dir, name+".key"), string(keyPEM))
	}
	srvCert, srvKey, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	issue("bridge", srvCert, srvKey, err)
	wCert, wKey, err := ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	issue("w1", wCert, wKey, err)
	caFile := filepath.Join(ca.Dir(), certs.CACertFile)

	rl, err := certs.NewReloader(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), caFile)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &oneJobBridge{hellos: make(chan *pb.Hello, 1), results: make(chan *pb.JobResult, 1), ended: make(chan error, 1)}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(rl.ServerConfig(nil))))
	pb.RegisterWorkerServiceServer(srv, fake)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, "gearbridge", []string{"worker", "--bridge", lis.Addr().String(), "--identifier", "w1",
			"--services", "--hostgroups", "dmz", "--max-workers", "3",
			"--tls-ca", caFile, "--tls-cert", filepath.Join(dir, "w1.crt"), "--tls-key", filepath.Join(dir, "w1.key")},
			strings.NewReader(""), &out, &errOut)
	}()
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case c := <-code:
			t.Fatalf("worker exited %d while waiting for %s: %s", c, what, errOut.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", what)
		}
	}
	helloSeen := make(chan struct{})
	go func() {
		h := <-fake.hellos
		if h.GetIdentifier() != "w1" || h.GetSlots() != 3 || !slices.Equal(h.GetQueues(), []string{"service", "hostgroup_dmz"}) {
			t.Errorf("hello %v", h)
		}
		close(helloSeen)
	}()
	wait("hello", helloSeen)
	resultSeen := make(chan struct{})
	go func() {
		r := <-fake.results
		if r.GetJobId() != "1" || r.GetReturnCode() != 0 || string(r.GetOutput()) != "OK from w1" {
			t.Errorf("result %v", r)
		}
		close(resultSeen)
	}()
	wait("result", resultSeen)

	cancel() // as SIGTERM does through main's signal context
	select {
	case c := <-code:
		if c != exitOK {
			t.Fatalf("exit %d: %s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit")
	}
	if err := <-fake.ended; err != nil {
		t.Fatal(err)
	}
}

// oneJobBridge is a WorkerService that welcomes a worker, hands it one job,
// and acknowledges the result once the worker drains.
type oneJobBridge struct {
	pb.UnimplementedWorkerServiceServer
	hellos  chan *pb.Hello
	results chan *pb.JobResult
	ended   chan error // nil: drained, acknowledged, closed by the worker
}

func (b *oneJobBridge) Work(st pb.WorkerService_WorkServer) error {
	err := b.work(st)
	b.ended <- err
	return err
}

func (b *oneJobBridge) work(st pb.WorkerService_WorkServer) error {
	req, err := st.Recv()
	if err != nil {
		return err
	}
	if req.GetHello() == nil {
		return errors.New("want a hello")
	}
	b.hellos <- req.GetHello()
	for _, m := range []*pb.WorkResponse{
		{Msg: &pb.WorkResponse_Welcome{Welcome: &pb.Welcome{SessionId: "s1", Queues: req.GetHello().GetQueues()}}},
		{Msg: &pb.WorkResponse_Job{Job: &pb.Job{JobId: "1", Type: pb.JobType_JOB_TYPE_SERVICE, HostName: []byte("h"),
			ServiceDescription: []byte("s"), CommandLine: []byte("/bin/echo OK from w1")}}},
	} {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	var result *pb.JobResult
	for {
		req, err := st.Recv()
		switch {
		case errors.Is(err, io.EOF):
			if result == nil {
				return errors.New("worker closed without a result")
			}
			return nil
		case err != nil:
			return err
		case req.GetResult() != nil:
			result = req.GetResult()
			b.results <- result
		case req.GetDrain() != nil:
			if result == nil {
				return errors.New("drain before the result")
			}
			if err := st.Send(&pb.WorkResponse{Msg: &pb.WorkResponse_Ack{Ack: &pb.Ack{JobId: "1"}}}); err != nil {
				return err
			}
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWorkerClassicConfigWithoutQueues: a classic file without any queue
// option serves hosts, services, event handlers and notifications with
// --transport=gearman, as the classic worker does; a remote worker refuses
// it instead of asking the bridge for the central site's generic queues.
func TestWorkerClassicConfigWithoutQueues(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mod_gearman_worker.conf")
	writeTestFile(t, file, "server=localhost:4730\nkey=secret\nmax-worker=4\n")
	_, notes, cfg, err := parseWorkerFlags(t, "--config", file, "--transport=gearman")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"host", "service", "eventhandler", "notification"}; !slices.Equal(cfg.Queues, want) {
		t.Fatalf("queues %v, want %v", cfg.Queues, want)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "as the classic worker does") {
		t.Fatalf("notes %q", notes)
	}
	// A queue flag is a choice by hand: only that queue.
	if _, _, cfg, err = parseWorkerFlags(t, "--config", file, "--transport=gearman", "--hostgroups", "dmz"); err != nil || !slices.Equal(cfg.Queues, []string{"hostgroup_dmz"}) {
		t.Fatalf("queues %v, %v", cfg.Queues, err)
	}
	_, _, _, err = parseWorkerFlags(t, append([]string{"--config", file}, tlsFlags...)...)
	if err == nil || !strings.Contains(err.Error(), "at least one queue") {
		t.Fatalf("remote worker without queues: err = %v", err)
	}
}

// TestWorkerClassicConfigByContent: --config takes a classic
// mod_gearman_worker.conf whatever its name, told from YAML by its content,
// with options spelled as in a file or as on the command line.
func TestWorkerClassicConfigByContent(t *testing.T) {
	const classic = `# classic worker configuration
--identifier=classic-w
--services
eventhandler=yes
--hostgroups=dmz
max-worker=5
--job_timeout=30
`
	for _, name := range []string{"mod_gearman_worker.conf", "mod_gearman_worker.conf.in", "worker", "worker.yaml", "worker.cfg.dist"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name)
			writeTestFile(t, file, classic)
			_, _, cfg, err := parseWorkerFlags(t, append([]string{"--config", file, "--bridge", "b:4731"}, tlsFlags...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := worker.DefaultConfig()
			want.Bridges = []string{"b:4731"}
			want.Identifier = "classic-w"
			want.Queues = []string{"service", "eventhandler", "hostgroup_dmz"}
			want.Slots = 5
			want.JobTimeout = 30 * time.Second
			want.RestrictCommandCharacters = classicconf.Defaults().RestrictCommandCharacters
			assertWorkerConfig(t, cfg, want)
		})
	}
	// YAML stays YAML, even under a classic name.
	file := filepath.Join(t.TempDir(), "worker.conf")
	writeTestFile(t, file, "# remote worker\nidentifier: yaml-w\nservices: yes\nmax-workers: 6\n")
	_, _, cfg, err := parseWorkerFlags(t, append([]string{"--config", file, "--bridge", "b:4731"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identifier != "yaml-w" || cfg.Slots != 6 || !slices.Equal(cfg.Queues, []string{"service"}) {
		t.Fatalf("YAML named .conf: identifier %q slots %d queues %q", cfg.Identifier, cfg.Slots, cfg.Queues)
	}
}

// TestWorkerKeyFlagBeatsKeyfileInFile: key and keyfile are one setting.
// The source with the highest precedence that gives either decides (flags,
// then GEARBRIDGE_* variables, then the file), even where the file uses
// the other spelling.
func TestWorkerKeyFlagBeatsKeyfileInFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	writeTestFile(t, keyFile, "from-keyfile\n")
	classic := func(line string) string {
		file := filepath.Join(t.TempDir(), "mod_gearman_worker.conf")
		writeTestFile(t, file, "server=localhost:4730\nservices=yes\n"+line+"\n")
		return file
	}
	yaml := filepath.Join(dir, "worker.yaml")
	writeTestFile(t, yaml, "transport: gearman\nservices: yes\nkeyfile: "+keyFile+"\n")
	tests := []struct {
		name    string
		env     [2]string
		args    []string
		key     string // wanted Key, KeyFile
		keyFile string
	}{
		{name: "--key beats keyfile=", args: []string{"--config", classic("keyfile=" + keyFile), "--key", "from-flag"}, key: "from-flag"},
		{name: "--key beats passwordfile=", args: []string{"--config", classic("passwordfile=" + keyFile), "--key", "from-flag"}, key: "from-flag"},
		{name: "--keyfile beats key=", args: []string{"--config", classic("key=from-file"), "--keyfile", keyFile}, keyFile: keyFile},
		{name: "--keyfile beats --key= in the file", args: []string{"--config", classic("--key=from-file"), "--keyfile", keyFile}, keyFile: keyFile},
		{name: "--key beats keyfile: in YAML", args: []string{"--config", yaml, "--key", "from-flag"}, key: "from-flag"},
		{name: "GEARBRIDGE_KEY beats keyfile=", env: [2]string{"GEARBRIDGE_KEY", "from-env"}, args: []string{"--config", classic("keyfile=" + keyFile)}, key: "from-env"},
		{name: "--keyfile beats GEARBRIDGE_KEY", env: [2]string{"GEARBRIDGE_KEY", "from-env"}, args: []string{"--config", classic("key=from-file"), "--keyfile", keyFile}, keyFile: keyFile},
		{name: "the file alone", args: []string{"--config", classic("keyfile=" + keyFile)}, keyFile: keyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			opts, _, _, err := parseWorkerFlags(t, append([]string{"--transport=gearman"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if opts.Key != tt.key || opts.KeyFile != tt.keyFile {
				t.Errorf("key %q keyfile %q, want %q %q", opts.Key, opts.KeyFile, tt.key, tt.keyFile)
			}
			if _, err := opts.gearmanOptions(); err != nil {
				t.Errorf("gearman options: %v", err)
			}
		})
	}
	// Both on the same level is a mistake, not a precedence question.
	opts, _, _, err := parseWorkerFlags(t, "--transport=gearman", "--services", "--key", "k", "--keyfile", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.gearmanOptions(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("--key and --keyfile: err = %v, want not both", err)
	}
}

// TestTimeoutReturnDefault: timed-out checks are CRITICAL (2) unless
// configured otherwise, in the worker, in the bridge and with a classic
// file, as with the classic C worker and its shipped config files.
func TestTimeoutReturnDefault(t *testing.T) {
	_, _, cfg, err := parseWorkerFlags(t, append([]string{"--services"}, tlsFlags...)...)
	if err != nil || cfg.TimeoutReturn != 2 {
		t.Errorf("worker: timeout return %d (%v), want 2", cfg.TimeoutReturn, err)
	}
	file := filepath.Join(t.TempDir(), "mod_gearman_worker.conf")
	writeTestFile(t, file, "services=yes\n")
	_, _, cfg, err = parseWorkerFlags(t, append([]string{"--config", file}, tlsFlags...)...)
	if err != nil || cfg.TimeoutReturn != 2 {
		t.Errorf("worker with a classic file: timeout return %d (%v), want 2", cfg.TimeoutReturn, err)
	}
	opts, err := loadBridgeOptions(nil, "")
	if err != nil || opts.TimeoutReturn != 2 {
		t.Errorf("bridge: timeout return %d (%v), want 2", opts.TimeoutReturn, err)
	}
	for _, cmd := range []string{"worker", "bridge"} {
		_, out, _ := runCmd(t, "gearbridge", cmd, "--help")
		if !strings.Contains(out, "2 CRITICAL") || !strings.Contains(out, "(default 2)") {
			t.Errorf("gearbridge %s --help does not document timeout-return 2 CRITICAL:\n%s", cmd, out)
		}
	}
}

// TestWorkerBridgeDefaultPort: --bridge without a port dials the bridge's
// default port 4731; a bad port is a usage error naming it.
func TestWorkerBridgeDefaultPort(t *testing.T) {
	_, _, cfg, err := parseWorkerFlags(t, append([]string{"--services", "--bridge", "b1,b2:5000,[::1]"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b1:4731", "b2:5000", "[::1]:4731"}; !slices.Equal(cfg.Bridges, want) {
		t.Errorf("bridges %q, want %q", cfg.Bridges, want)
	}
	if _, _, _, err := parseWorkerFlags(t, append([]string{"--services", "--bridge", "b1:http"}, tlsFlags...)...); err == nil || !strings.Contains(err.Error(), `bridge "b1:http"`) {
		t.Errorf("bad port: %v", err)
	}
}

// TestWorkerEnrollBridgeDefaultPort: enroll takes --bridge without a port too.
func TestWorkerEnrollBridgeDefaultPort(t *testing.T) {
	_, _, errOut := runCmd(t, "gearbridge", "worker", "enroll", "--bridge", "127.0.0.1", "--token", "bad",
		"--ca-fingerprint", "sha256:00", "--state-dir", t.TempDir())
	if strings.Contains(errOut, "HOST:PORT") || !strings.Contains(errOut, "token") {
		t.Errorf("stderr %q: want only the token refused", errOut)
	}
}
