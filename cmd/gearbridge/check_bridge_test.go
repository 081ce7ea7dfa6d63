package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// servedBridge is an in-process bridge with the given key on a loopback
// port, open to every identity; it stops when the test ends.
func servedBridge(t *testing.T, p *testPKI, gmAddr, key string) string {
	t.Helper()
	cfg := bridge.DefaultConfig()
	cfg.Servers, cfg.Key = []string{gmAddr}, key
	cfg.Authz = bridge.AllowAll()
	b, err := bridge.New(cfg, bridge.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := certs.NewReloader(filepath.Join(p.dir, "bridge.crt"), filepath.Join(p.dir, "bridge.key"), filepath.Join(p.dir, "ca", certs.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, lis, rl.ServerConfig(nil)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("bridge: %v", err)
		}
	})
	return lis.Addr().String()
}

// runRemoteWorker runs `gearbridge worker --services` against the bridge
// until the test ends.
func runRemoteWorker(t *testing.T, p *testPKI, addr, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	var errOut bytes.Buffer
	args := append([]string{"worker", "--bridge", addr, "--identifier", name, "--services", "--max-workers", "2"},
		p.client(t, certs.RoleWorker, name)...)
	go func() { code <- run(ctx, "gearbridge", args, strings.NewReader(""), &bytes.Buffer{}, &errOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != exitOK {
				t.Errorf("worker exit %d: %s", c, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
}

// submitCheck puts one service check for host on the service queue,
// encrypted with key.
func submitCheck(t *testing.T, gmAddr, key, host string) {
	t.Helper()
	codec, err := modgearman.NewCodec(key, true)
	if err != nil {
		t.Fatal(err)
	}
	j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: host, ServiceDescription: "svc",
		CoreTime: time.Now(), Timeout: 10 * time.Second, CommandLine: "/bin/echo OK"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := gearman.NewClient([]string{gmAddr}, gearman.ClientOptions{})
	defer c.Close()
	if _, err := c.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityLow, true); err != nil {
		t.Fatal(err)
	}
}

// TestCheckBridgeWrongKey: a NEB whose key the bridge does not share puts
// jobs the bridge cannot decode; check --bridge turns CRITICAL and says
// so. With the right key the same traffic is OK. The next run, with
// nothing new, is OK again: the state file keeps the totals.
func TestCheckBridgeWrongKey(t *testing.T) {
	for _, tt := range []struct {
		name, nebKey string
		want         int
		wantText     string
	}{
		{"good key", "bridge_key_1234", stateOK, "no job failed to decode since the bridge started"},
		{"wrong key", "another_key_999", stateCritical, "1 job(s) failed to decode since the bridge started: check the key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gm := gearmantest.Start(t)
			p := newTestPKI(t)
			addr := servedBridge(t, p, gm.Addr(), "bridge_key_1234")
			runRemoteWorker(t, p, addr, "w1")
			admin := p.client(t, certs.RoleAdmin, "ops")
			stateFile := filepath.Join(t.TempDir(), "check.json")
			check := func(extra ...string) (int, string) {
				args := append(append([]string{"check", "--bridge", addr, "--state-file", stateFile, "-t", "5"}, admin...), extra...)
				code, out, errOut := runCmd(t, "gearbridge", args...)
				if errOut != "" {
					t.Errorf("stderr %q", errOut)
				}
				return code, out
			}
			// The worker's session is attached before the job is put.
			waitFor(t, func() bool {
				_, out := check("--state-file", filepath.Join(t.TempDir(), "probe.json"))
				return strings.Contains(out, "1 session(s) of 1 identity")
			})
			submitCheck(t, gm.Addr(), tt.nebKey, "web1")
			// The job left the queue: decoded and run, or refused.
			waitFor(t, func() bool {
				return queueStatus(t, gm.Addr())["service"].Total == 0
			})
			if tt.want == stateOK {
				raws := grabResults(t, gm.Addr(), "check_results", 1)
				codec, _ := modgearman.NewCodec("bridge_key_1234", true)
				if plain, err := codec.Decode(raws[0]); err != nil || !strings.Contains(string(plain), "output=OK") {
					t.Fatalf("result %q: %v", plain, err)
				}
			}
			code, out := check()
			if code != tt.want || !strings.Contains(out, tt.wantText) {
				t.Fatalf("exit %d, want %d\n%s\nwant text %q", code, tt.want, out, tt.wantText)
			}
			if !strings.HasPrefix(out, "check_gearman "+stateNames[tt.want]+" - ") || !strings.Contains(out, "|sessions=1;;;0 ") {
				t.Errorf("plugin line %q", out)
			}
			code, out = check("--output", "json")
			var v struct {
				State  string            `json:"state"`
				Code   int               `json:"exit_code"`
				Bridge bridgeCheckReport `json:"bridge"`
				Output string            `json:"output"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			if code != stateOK || v.State != "OK" || v.Bridge.Undecodable != 0 || v.Bridge.SinceStart || v.Bridge.Sessions["w1"] != 1 ||
				v.Bridge.GearmandServers != 1 || v.Bridge.GearmandUnreachable != 0 {
				t.Errorf("second run (nothing new): exit %d %+v", code, v)
			}
		})
	}
}

// TestCheckBridgeRules applies the rules to a fake bridge's counters:
// gearmand outages, invalid jobs against -w/-c, sessions per identity
// against -W/-C, -x, and the totals of the previous run.
func TestCheckBridgeRules(t *testing.T) {
	counters := func(kv ...any) []*pb.Counter {
		var cs []*pb.Counter
		for i := 0; i < len(kv); i += 2 {
			cs = append(cs, &pb.Counter{Name: kv[i].(string), Value: uint64(kv[i+1].(int))})
		}
		return cs
	}
	sessions := func(ids ...string) []*pb.SessionStatus {
		var ss []*pb.SessionStatus
		for _, id := range ids {
			ss = append(ss, &pb.SessionStatus{Identity: id})
		}
		return ss
	}
	o := checkOptions{jobsWarn: 10, jobsCrit: 100, workersWarn: 2, workersCrit: 3}
	tests := []struct {
		name     string
		counters []*pb.Counter
		sessions []*pb.SessionStatus
		prev     map[string]uint64
		noWorker bool
		want     int
		text     string
	}{
		{"all well", counters(counterGmServers, 2), sessions("a"), nil, false, stateOK, "gearmand 2/2 reachable"},
		{"one gearmand down", counters(counterGmServers, 2, counterGmDown, 1), sessions("a"), nil, false, stateWarning, "1 of 2 gearmand unreachable."},
		{"all gearmand down", counters(counterGmServers, 2, counterGmDown, 2), sessions("a"), nil, false, stateCritical, "no gearmand reachable."},
		{"invalid jobs warning", counters(counterGmServers, 1, counterInvalid, 6, counterResRefused, 4), sessions("a"), nil, false, stateWarning, "6 invalid job(s) and 4 refused result(s) since the bridge started."},
		{"invalid jobs critical", counters(counterGmServers, 1, counterInvalid, 150), sessions("a"), nil, false, stateCritical, "150 invalid job(s)"},
		{"old invalid jobs", counters(counterGmServers, 1, counterInvalid, 150), sessions("a"), map[string]uint64{counterInvalid: 149}, false, stateOK, "since the last run"},
		{"old undecodable", counters(counterGmServers, 1, counterUndecodable, 7), sessions("a"), map[string]uint64{counterUndecodable: 7}, false, stateOK, "no job failed to decode since the last run"},
		{"new undecodable", counters(counterGmServers, 1, counterUndecodable, 9), sessions("a"), map[string]uint64{counterUndecodable: 7}, false, stateCritical, "2 job(s) failed to decode since the last run"},
		{"sessions warning", counters(counterGmServers, 1), sessions("a", "a", "b"), nil, false, stateWarning, "Identity a has 2 sessions."},
		{"sessions critical", counters(counterGmServers, 1), sessions("b", "b", "b"), nil, false, stateCritical, "Identity b has 3 sessions."},
		{"no session with -x", counters(counterGmServers, 1), nil, nil, true, stateCritical, "no worker session."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "state.json")
			now := time.Now()
			if tt.prev != nil {
				if err := writeBridgeState(file, bridgeCheckState{Time: now.Add(-time.Minute), Counters: tt.prev}); err != nil {
					t.Fatal(err)
				}
			}
			oo := o
			oo.noWorkerCrit = tt.noWorker
			resp := &pb.GetStatusResponse{Version: "1", Uptime: durationpb.New(time.Hour), Counters: tt.counters, Sessions: tt.sessions}
			var out bytes.Buffer
			state, _ := checkBridge(context.Background(), &out, fakeAdmin{resp}, "b:4731", file, oo, now)
			if state != tt.want || !strings.Contains(out.String(), tt.text) {
				t.Errorf("state %d, want %d; output %q lacks %q", state, tt.want, out.String(), tt.text)
			}
		})
	}
}

func TestCheckBridgeUsage(t *testing.T) {
	code, out, _ := runCmd(t, "gearbridge", "check", "--bridge", "127.0.0.1:1", "-q", "x")
	if code != stateUnknown || !strings.HasPrefix(out, "Error - ") {
		t.Errorf("exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "gearbridge", "check", "-H", "127.0.0.1:1", "--output", "yaml")
	if code != stateUnknown || !strings.HasPrefix(out, `Error - --output "yaml"`) {
		t.Errorf("exit %d\n%s", code, out)
	}
}
