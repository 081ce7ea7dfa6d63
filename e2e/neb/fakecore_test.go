package nebe2e

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

const key = "fakecore-secret-key"

func grabJob(t *testing.T, addr, fn string) *gearman.Job {
	t.Helper()
	j := grabJobWithin(t, addr, fn, 10*time.Second)
	if j == nil {
		t.Fatalf("no job on %s within 10s", fn)
	}
	return j
}

// grabJobWithin takes one job of fn, or returns nil after d.
func grabJobWithin(t *testing.T, addr, fn string, d time.Duration) *gearman.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, addr, gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(fn); err != nil {
		t.Fatal(err)
	}
	j, err := wc.Grab(ctx)
	if err != nil {
		return nil
	}
	_ = wc.Complete(j.Handle, nil)
	return j
}

// opensslDecrypt is the independent oracle: base64 + AES-256-ECB with
// OpenSSL, key zero-filled to 32 bytes.
func opensslDecrypt(t *testing.T, workload []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl not installed; oracle skipped")
		return nil
	}
	k := make([]byte, 32)
	copy(k, key)
	ct, err := base64.StdEncoding.DecodeString(string(workload))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "enc", "-d", "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(k))
	cmd.Stdin = bytes.NewReader(ct)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	if i := bytes.IndexByte(out, 0); i >= 0 {
		out = out[:i]
	}
	return out
}

func decodeJob(t *testing.T, codec *modgearman.Codec, j *gearman.Job) modgearman.Job {
	t.Helper()
	plain, err := codec.Decode(j.Data)
	if err != nil {
		t.Fatal(err)
	}
	if o := opensslDecrypt(t, j.Data); o != nil && !bytes.Equal(o, plain) {
		t.Errorf("openssl decodes %q, codec %q", o, plain)
	}
	job, err := modgearman.ParseJob(plain)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// goPadded encrypts like the Go worker: LF padding, no NUL.
func goPadded(plain []byte) []byte {
	k := make([]byte, 32)
	copy(k, key)
	for len(plain)%16 != 0 {
		plain = append(plain, '\n')
	}
	b, _ := aes.NewCipher(k)
	ct := make([]byte, len(plain))
	for i := 0; i < len(plain); i += 16 {
		b.Encrypt(ct[i:i+16], plain[i:i+16])
	}
	return []byte(base64.StdEncoding.EncodeToString(ct))
}

func wrap76(s []byte) []byte {
	var out []byte
	for len(s) > 76 {
		out = append(out, s[:76]...)
		out = append(out, '\n')
		s = s[76:]
	}
	return append(out, s...)
}

func TestFakeCore(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) { testFakeCore(t, l.name, l.api) })
	}
}

func TestFakeCorePerfdata(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			codec, _ := modgearman.NewCodec(key, true)
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" perfdata=yes services=yes")
			fc.do("RC 0", "processed h1 load 2 load1=1.5;1;2")
			j := grabJob(t, srv.Addr(), "perfdata")
			plain, err := codec.DecodeRaw(j.Data)
			want := "DATATYPE::SERVICEPERFDATA\tTIMET::1700000000\tHOSTNAME::h1\tSERVICEDESC::load\tSERVICEPERFDATA::load1=1.5;1;2\t" +
				"SERVICECHECKCOMMAND::check_svc!a!b\tHOSTSTATE::DOWN\tHOSTSTATETYPE::HARD\tSERVICESTATE::CRITICAL\tSERVICESTATETYPE::HARD\n"
			if err != nil || string(plain) != want {
				t.Errorf("service perfdata %q %v", plain, err)
			}
			if j.Unique != modgearman.Uniq("perfdata", "h1", "load") {
				t.Errorf("unique %q", j.Unique)
			}
			fc.do("RC 0", "hprocessed h1 0 rta=1ms")
			j = grabJob(t, srv.Addr(), "perfdata")
			plain, _ = codec.DecodeRaw(j.Data)
			want = "DATATYPE::HOSTPERFDATA\tTIMET::1700000000\tHOSTNAME::h1\tHOSTPERFDATA::rta=1ms\t" +
				"HOSTCHECKCOMMAND::check_host!x\tHOSTSTATE::UP\tHOSTSTATETYPE::HARD\n"
			if string(plain) != want {
				t.Errorf("host perfdata %q", plain)
			}
			fc.do("BYE", "quit")
		})
	}
}

func testFakeCore(t *testing.T, layout string, api int) {
	srv := gearmantest.Start(t)
	codec, _ := modgearman.NewCodec(key, true)
	fc := startFakeCore(t, layout, "server="+srv.Addr()+" key="+key+
		" hosts=yes services=yes eventhandler=yes hostgroups=hg servicegroups=sg queue_custom_variable=WORKER accept_clear_results=yes")

	// Service check → OVERRIDE, is_executing set, options cleared.
	if got := fc.do("RC", "svc h1 s1 0 /usr/lib/nagios/plugins/check_x -w 1"); got != "RC 206 exec=1 opts=0 fresh=0" {
		t.Errorf("service check: %s", got)
	}
	job := decodeJob(t, codec, grabJob(t, srv.Addr(), "service"))
	if job.Type != modgearman.JobService || job.HostName != "h1" || job.ServiceDescription != "s1" ||
		job.CommandLine != "/usr/lib/nagios/plugins/check_x -w 1" || job.Timeout != 60*time.Second ||
		job.ResultQueue != "check_results" || time.Since(job.CoreTime) < 400*time.Millisecond {
		t.Errorf("service job %+v", job)
	}
	// Servicegroup, custom variable, hostgroup routing.
	fc.do("OK", "sg sg 1")
	fc.do("RC 206", "svc h1 s2 0 /bin/check_sg")
	if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "servicegroup_sg")); j.ServiceDescription != "s2" {
		t.Errorf("servicegroup job %+v", j)
	}
	fc.do("OK", "svcvar WORKER custom_q")
	fc.do("RC 206", "svc h1 s3 0 /bin/check_cv")
	if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "custom_q")); j.ServiceDescription != "s3" {
		t.Errorf("custom variable job %+v", j)
	}
	fc.do("OK", "clearvars")
	fc.do("OK", "hostvar WORKER local")
	if got := fc.do("RC", "svc h1 s4 0 /bin/check_local"); !strings.HasPrefix(got, "RC 0 ") {
		t.Errorf("local custom variable: %s", got)
	}
	fc.do("OK", "clearvars")
	fc.do("OK", "sg sg 0")
	fc.do("OK", "hg hg 1")
	if got := fc.do("RC", "host h1 0 /bin/check_host"); got != "RC 206 exec=1 opts=0 fresh=0" {
		t.Errorf("host check: %s", got)
	}
	if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "hostgroup_hg")); j.Type != modgearman.JobHost || j.HostName != "h1" || j.Timeout != 30*time.Second {
		t.Errorf("host job %+v", j)
	}
	fc.do("OK", "hg hg 0")
	// Event handler.
	fc.do("RC 206", "eh h1 s1 /bin/handler arg")
	if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "eventhandler")); j.Type != modgearman.JobEventHandler || j.CommandLine != "/bin/handler arg" {
		t.Errorf("event handler job %+v", j)
	}

	// Results in every classic form.
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	mk := func(svc string, rc int) modgearman.Result {
		return modgearman.Result{Type: "active", HostName: "h1", ServiceDescription: svc, CoreStartTime: now.Add(-2 * time.Second),
			StartTime: now.Add(-1500 * time.Millisecond), FinishTime: now.Add(-time.Second), ReturnCode: rc, ExitedOK: true,
			Source: "test", Output: "out " + svc + "\nlong|perf=1"}
	}
	clearCodec, _ := modgearman.NewCodec("", false)
	workloads := map[string][]byte{
		"cpad":    codec.Encode(mk("cpad", 1).Marshal()),
		"gopad":   goPadded(mk("gopad", 2).Marshal()),
		"wrapped": wrap76(codec.Encode(mk("wrapped", 3).Marshal())),
		"clear":   clearCodec.Encode(mk("clear", 0).Marshal()),
	}
	for _, w := range workloads {
		if _, err := client.Submit(ctx, "check_results", "", w, gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	want := len(workloads)
	// Debian's gearman CLI as a classic sender, when installed.
	cli := mk("cli", 1)
	cli.Type = modgearman.ResultPassive
	if _, err := exec.LookPath("gearman"); err == nil {
		host, port, _ := strings.Cut(srv.Addr(), ":")
		cmd := exec.Command("gearman", "-h", host, "-p", port, "-b", "-f", "check_results")
		cmd.Stdin = bytes.NewReader(codec.Encode(cli.MarshalPassive()))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("gearman -b: %v %s", err, out)
		}
		want++
	}
	if got := fc.do("WAITED", "wait %d 10000", want); got != fmt.Sprintf("WAITED %d", want) {
		t.Fatalf("results: %s", got)
	}
	byName := map[string]map[string]string{}
	for _, r := range fc.results() {
		byName[r["svc"]] = r
	}
	wantResched := "-1"
	if api == 4 {
		wantResched = "1"
	}
	for name, rc := range map[string]string{"cpad": "1", "gopad": "2", "wrapped": "3", "clear": "0"} {
		r := byName[name]
		if r == nil {
			t.Errorf("result %s not injected", name)
			continue
		}
		lat, _ := strconv.ParseFloat(r["latency"], 64)
		if r["rc"] != rc || r["objtype"] != "0" || r["type"] != "0" || r["sched"] != "1" || r["resched"] != wantResched ||
			r["exited"] != "1" || r["output"] != `out `+name+`\nlong|perf=1` || lat < 1.4 || lat > 3 || r["engine"] != "Mod-Gearman" {
			t.Errorf("result %s: %v", name, r)
		}
	}
	if want > len(workloads) {
		if r := byName["cli"]; r == nil || r["type"] != "1" || r["rc"] != "1" {
			t.Errorf("passive gearman -b result: %v", r)
		}
	}

	// The check ping.
	reply, err := client.Do(ctx, "check_results", "", []byte("check"), gearman.PriorityHigh)
	if err != nil || !strings.HasPrefix(string(reply), "0:OK - result worker running on") {
		t.Errorf("ping: %q %v", reply, err)
	}

	// Internal check_dummy is answered without a job.
	fc.do("RC 206", "svc h1 dummy 0 /usr/lib/nagios/plugins/check_dummy 1 hello")
	fc.do("WAITED 1", "wait 1 5000")
	if rs := fc.results(); len(rs) != 1 || rs[0]["output"] != "WARNING: hello" || rs[0]["rc"] != "1" {
		t.Errorf("check_dummy: %v", rs)
	}

	// SIGHUP: deinit + init in the same runtime, everything keeps working.
	if got := fc.do("HUP", "hup"); got != "HUP 0 onstack=1" {
		t.Fatalf("reload: %s", got)
	}
	fc.do("RC 206", "svc h1 after 0 /bin/after_hup")
	if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "service")); j.ServiceDescription != "after" {
		t.Errorf("job after reload %+v", j)
	}
	if _, err := client.Submit(ctx, "check_results", "", codec.Encode(mk("afterhup", 0).Marshal()), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	fc.do("WAITED 1", "wait 1 10000")
	fc.results()

	// gearmand down: checks are taken and wait in the module for gearmand
	// (gearmand_down_hold, 30s here); none gets a result.
	srv.Stop()
	for _, svc := range []string{"down1", "down2"} {
		if got := fc.do("RC", "svc h1 %s 0 /bin/x", svc); !strings.HasPrefix(got, "RC 206 exec=1") {
			t.Errorf("check while gearmand is down: %s", got)
		}
	}
	if got := fc.do("WAITED", "wait 1 1000"); got != "WAITED 0" {
		t.Errorf("a result while gearmand is down: %s %v", got, fc.results())
	}
	srv.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got := fc.do("RC", "svc h1 back 0 /bin/x"); strings.HasPrefix(got, "RC 206") {
			// An explicit result means it was still refused.
			if fc.do("WAITED", "wait 1 300") == "WAITED 0" {
				grabJob(t, srv.Addr(), "service")
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("checks did not resume after gearmand came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := stats(t, fc)
	t.Logf("%s stats after faults: %+v", layout, st)
	fc.results()
	fc.do("BYE", "quit")
}

type statsReport struct {
	Inits         int            `json:"inits"`
	Injected      uint64         `json:"injected"`
	DelayP50Micro int64          `json:"delay_p50_us"`
	DelayP99Micro int64          `json:"delay_p99_us"`
	DelayMaxMicro int64          `json:"delay_max_us"`
	Module        map[string]any `json:"module"`
}

func stats(t *testing.T, fc *fakeCore) statsReport {
	t.Helper()
	line := fc.do("STATS", "stats")
	var s statsReport
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "STATS ")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}
