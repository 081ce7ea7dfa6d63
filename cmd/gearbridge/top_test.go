package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// fakeAdmin answers GetStatus with a fixed response.
type fakeAdmin struct{ resp *pb.GetStatusResponse }

func (f fakeAdmin) GetStatus(context.Context, *pb.GetStatusRequest, ...grpc.CallOption) (*pb.GetStatusResponse, error) {
	return f.resp, nil
}

// TestTopShowsIdentityIdentifierAndPeer: top's session table names each
// session's identifier, the certificate identity behind it, the peer's
// address and since when it is connected, in aligned columns however long
// they are.
func TestTopShowsIdentityIdentifierAndPeer(t *testing.T) {
	since := time.Date(2026, 12, 4, 9, 30, 0, 0, time.Local)
	resp := &pb.GetStatusResponse{
		Version: "1.2.3",
		Uptime:  durationpb.New(90 * time.Second),
		Sessions: []*pb.SessionStatus{
			{Identifier: "site-a-1", Identity: "site-a", Peer: "192.0.2.10:51234", Started: timestamppb.New(since), Connected: true, Slots: 8, Credit: 5, InFlight: 3, JobsDone: 42, Queues: []string{"hostgroup_site_a", "service"}},
			{Identifier: "site-a-2", Identity: "site-a", Peer: "[2001:db8::1]:60000", Started: timestamppb.New(since), Connected: false, Slots: 4, Queues: []string{"hostgroup_site_a"}},
		},
	}
	var out bytes.Buffer
	printSessions(context.Background(), &out, "bridge:4731", fakeAdmin{resp})
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var header string
	var rows []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Identifier"):
			header = l
		case strings.Contains(l, "site-a-"):
			rows = append(rows, l)
		}
	}
	if header == "" || len(rows) != 2 {
		t.Fatalf("no header or not two rows:\n%s", out.String())
	}
	for _, col := range []string{"Identifier", "Identity", "Peer", "Connected Since", "State", "Slots", "Credit", "In Flight", "Jobs Done", "Queues"} {
		if !strings.Contains(header, col) {
			t.Errorf("header lacks %q: %s", col, header)
		}
	}
	want := [][]string{
		{"site-a-1", "site-a", "192.0.2.10:51234", "2026-12-04 09:30:00", "connected", "8", "5", "3", "42", "hostgroup_site_a,service"},
		{"site-a-2", "site-a", "[2001:db8::1]:60000", "2026-12-04 09:30:00", "detached", "4", "0", "0", "0", "hostgroup_site_a"},
	}
	for i, row := range rows {
		cells := strings.Split(row, "|")
		if len(cells) != len(want[i]) {
			t.Fatalf("row %q has %d cells, want %d", row, len(cells), len(want[i]))
		}
		for j, c := range cells {
			if strings.TrimSpace(c) != want[i][j] {
				t.Errorf("row %d cell %d = %q, want %q", i, j, strings.TrimSpace(c), want[i][j])
			}
		}
	}
	// Columns line up: every '|' of the rows sits under one of the header.
	for _, row := range rows {
		for i, r := range row {
			if r == '|' && (i >= len(header) || header[i] != '|') {
				t.Fatalf("columns do not line up:\n%s\n%s", header, row)
			}
		}
	}
}

// TestTopVersion: -V answers like gearman_top's and exits 0.
func TestTopVersion(t *testing.T) {
	code, out, _ := runCmd(t, "gearbridge", "top", "-V")
	if code != 0 || !strings.HasPrefix(out, "gearman_top: version ") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
}

// TestTopServerFlags: -s names a gearmand as -H does (classic gearman_top),
// and both may be given; each server gets its block.
func TestTopServerFlags(t *testing.T) {
	gm1, gm2 := gearmantest.Start(t), gearmantest.Start(t)
	code, out, errOut := runCmd(t, "gearbridge", "top", "-b", "-H", gm1.Addr(), "-s", gm2.Addr())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, addr := range []string{gm1.Addr(), gm2.Addr()} {
		if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  -  ` + regexp.QuoteMeta(addr) + `  -  v\S+$`).MatchString(out) {
			t.Errorf("no block for %s in\n%s", addr, out)
		}
	}
}

// TestTopQuitKey: the interactive screen ends when q is read from stdin
// (here a pipe: no terminal, so no raw mode); other keys do not end it.
func TestTopQuitKey(t *testing.T) {
	gm := gearmantest.Start(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	var out syncBuffer
	code := make(chan int, 1)
	// Ctrl-C's way out, should q not work: the test never leaves top running.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		code <- run(ctx, "gearbridge", []string{"top", "-H", gm.Addr(), "-i", "0.05"}, pr, &out, io.Discard)
	}()
	waitFor(t, func() bool { return strings.Count(out.String(), "(q to quit)") >= 2 })
	if _, err := pw.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		t.Fatalf("top ended (exit %d) on a key that is not q", c)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := pw.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q did not end top")
	}
}

// TestWatchQuitKey: the key handler calls quit on q or Q only, and gives
// up at the end of its input.
func TestWatchQuitKey(t *testing.T) {
	for _, tt := range []struct {
		in   string
		quit bool
	}{{"q", true}, {"abcQ", true}, {"hello\nworld\n", false}, {"", false}} {
		quit := false
		watchQuitKey(strings.NewReader(tt.in), func() { quit = true })
		if quit != tt.quit {
			t.Errorf("input %q: quit %v, want %v", tt.in, quit, tt.quit)
		}
	}
	// A pipe is not a terminal: nothing to restore, nothing changed.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	keysWithoutEnter(int(pr.Fd()))()
}

// TestTopJSON: top -b --output json prints one object per interval with
// every queue of every server and the bridge's sessions: identity, peer
// and since when they are connected.
func TestTopJSON(t *testing.T) {
	gm := gearmantest.Start(t)
	p := newTestPKI(t)
	addr := servedBridge(t, p, gm.Addr(), "bridge_key_1234")
	runRemoteWorker(t, p, addr, "w-json")
	admin := p.client(t, certs.RoleAdmin, "ops")
	var snap topSnapshot
	waitFor(t, func() bool {
		code, out, errOut := runCmd(t, "gearbridge", append([]string{"top", "-b", "--output", "json", "-H", gm.Addr(), "--bridge", addr}, admin...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if err := json.Unmarshal([]byte(out), &snap); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if len(snap.Servers) != 1 || snap.Servers[0].Server != gm.Addr() || snap.Servers[0].Version == "" {
			t.Fatalf("servers %+v", snap.Servers)
		}
		// The session is attached, and the bridge has registered its
		// queue on gearmand (a moment later).
		serviceWorkers := 0
		for _, q := range snap.Servers[0].Queues {
			if q.Name == "service" {
				serviceWorkers = q.Workers
			}
		}
		return snap.Bridge != nil && len(snap.Bridge.Sessions) == 1 && serviceWorkers >= 1
	})
	ss := snap.Bridge.Sessions[0]
	if ss.Identifier != "w-json" || ss.Identity != "w-json" || !strings.HasPrefix(ss.Peer, "127.0.0.1:") || !ss.Connected ||
		time.Since(ss.Since) > time.Minute || time.Since(ss.Since) < 0 {
		t.Errorf("session %+v", ss)
	}
	if snap.Bridge.Counters["gearmand_servers"] != 1 {
		t.Errorf("counters %v", snap.Bridge.Counters)
	}
	// JSON is for batch mode; an unknown format is a usage error.
	for _, args := range [][]string{{"top", "--output", "json"}, {"top", "-b", "--output", "xml"}} {
		if code, _, errOut := runCmd(t, "gearbridge", args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
		}
	}
}
