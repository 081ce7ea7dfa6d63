package gearman_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

func TestValidFunctionName(t *testing.T) {
	tests := []struct {
		name string
		fn   string
		ok   bool
	}{
		{"result queue", "check_results", true},
		{"status queue", "worker_host.example.com", true},
		{"hostgroup queue", "hostgroup_dmz-1", true},
		{"colon and utf-8", "servicegroup_a:b_é", true},
		{"512 bytes", strings.Repeat("f", 512), true},
		{"empty", "", false},
		{"513 bytes", strings.Repeat("f", 513), false},
		{"space", "my results", false},
		{"leading space", " check_results", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"carriage return", "a\rb", false},
		{"NUL", "a\x00b", false},
		{"control byte", "a\x01b", false},
		{"DEL", "a\x7fb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := gearman.ValidFunctionName(tt.fn)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidFunctionName(%q) = %v, want ok %v", tt.fn, err, tt.ok)
			}
			if err != nil && (!errors.Is(err, gearman.ErrInvalidArgument) || !gearman.Permanent(err)) {
				t.Fatalf("error %v is not a permanent ErrInvalidArgument", err)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	timeout := &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"invalid argument", fmt.Errorf("submit job to x: %w: function name %q", gearman.ErrInvalidArgument, "a b"), true},
		{"argument too large", fmt.Errorf("submit: %w", &gearman.ServerError{Code: gearman.CodeArgumentTooLarge}), true},
		{"job not found", &gearman.ServerError{Code: gearman.CodeJobNotFound}, true},
		{"unknown command", &gearman.ServerError{Code: gearman.CodeUnknownCommand}, true},
		{"unexpected command", &gearman.ServerError{Code: "INVALID_COMMAND"}, true},
		{"queue full", fmt.Errorf("submit: %w", &gearman.ServerError{Code: gearman.CodeQueueFull}), false},
		{"out of memory", &gearman.ServerError{Code: "MEMORY_ALLOCATION_FAILURE"}, false},
		{"connection lost", fmt.Errorf("submit: %w: %w", gearman.ErrConnectionLost, io.EOF), false},
		{"write timeout", fmt.Errorf("%w: %w", gearman.ErrConnectionLost, timeout), false},
		{"bare timeout", timeout, false},
		{"no server", gearman.ErrNoServer, false},
		{"closed", gearman.ErrClosed, false},
		{"deadline", context.DeadlineExceeded, false},
		{"canceled", context.Canceled, false},
		{"work failed", gearman.ErrWorkFail, false},
		{"protocol", gearman.ErrProtocol, false},
		{"other", errors.New("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gearman.Permanent(tt.err); got != tt.want {
				t.Fatalf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestPermanentOnRealErrors classifies what a real gearmand and a real
// connection produce.
func TestPermanentOnRealErrors(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)

	// gearmand's own refusal of a unique key over 64 bytes, sent around
	// the client's check.
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(gearman.AppendPacket(nil, gearman.MagicReq, gearman.PktSubmitJobBg,
		[]byte(funcName(t, "raw")), []byte(strings.Repeat("u", 65)), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	p, err := gearman.NewPacketReader(nc, 0, 0).ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	se := &gearman.ServerError{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
	if p.Type != gearman.PktError || se.Code != gearman.CodeArgumentTooLarge || !gearman.Permanent(se) {
		t.Fatalf("reply %s %v: want a permanent %s", p.Type, se, gearman.CodeArgumentTooLarge)
	}

	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for _, tc := range []struct{ fn, unique string }{
		{strings.Repeat("f", gearman.MaxFunctionLen+1), ""},
		{"results\x00", ""},
		{funcName(t, "ok"), strings.Repeat("u", 65)},
	} {
		_, err := c.Submit(ctx, tc.fn, tc.unique, nil, gearman.PriorityNormal, true)
		if !gearman.Permanent(err) {
			t.Errorf("Submit(%q, %q) = %v: want a permanent error", tc.fn, tc.unique, err)
		}
	}

	// A full queue drains: temporary.
	fn := funcName(t, "full")
	admin := newAdmin(t, srv.Addr())
	dialWorker(t, srv.Addr(), fn)
	waitFor(t, 5*time.Second, "function to exist", func() bool { return status(t, admin, fn).Workers == 1 })
	if err := admin.MaxQueue(ctx, fn, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, fn, "", nil, gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, fn, "", nil, gearman.PriorityNormal, true); err == nil || gearman.Permanent(err) {
		t.Fatalf("submit to a full queue: %v, want a temporary error", err)
	}

	// A server that went away: temporary.
	wc := dialWorker(t, srv.Addr(), fn)
	srv.Stop()
	waitFor(t, 5*time.Second, "the worker connection to notice", func() bool { return wc.Err() != nil })
	if err := wc.Complete("H:x:1", nil); err == nil || gearman.Permanent(err) {
		t.Fatalf("complete on a dead connection: %v, want a temporary error", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := c.Submit(sctx, fn, "", nil, gearman.PriorityNormal, true); err == nil || gearman.Permanent(err) {
		t.Fatalf("submit without a server: %v, want a temporary error", err)
	}
}

// TestClientIDOnGearmand records what gearmand 1.1.20 does with client IDs
// (SET_CLIENT_ID) that ValidClientID refuses, and checks that every ID it
// accepts comes back unchanged from "workers".
//
// Measured: gearmand never refuses an ID and never answers SET_CLIENT_ID,
// and the connection stays usable. It keeps at most 127 bytes (silently
// cut), stops at the first NUL, and prints the ID raw in "workers": a
// space or tab makes the "FD IP CLIENT-ID : functions" line ambiguous for
// tools that split on whitespace, a newline splits it in two, an empty ID
// leaves an empty column. ParseWorkers fails on the last two.
func TestClientIDOnGearmand(t *testing.T) {
	srv := gearmantest.Start(t)
	tests := []struct {
		name  string
		id    string
		shown string // as printed by "workers"
		valid bool
	}{
		{"host name", "worker1.example.com", "worker1.example.com", true},
		{"colon inside a word", "dc1:worker:2", "dc1:worker:2", true},
		{"utf-8", "wörker", "wörker", true},
		{"127 bytes", strings.Repeat("a", 127), strings.Repeat("a", 127), true},
		{"128 bytes are cut to 127", strings.Repeat("b", 128), strings.Repeat("b", 127), false},
		{"1000 bytes are cut to 127", strings.Repeat("c", 1000), strings.Repeat("c", 127), false},
		{"NUL ends the ID", "before\x00after", "before", false},
		{"space is printed raw", "two words", "two words", false},
		{"lone colon mimics the separator", "a : b", "a : b", false},
		{"tab is printed raw", "a\tb", "a\tb", false},
		{"newline splits the line", "a\nb", "a\nb", false},
		{"control byte is printed raw", "a\x01b", "a\x01b", false},
		{"empty leaves an empty column", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := gearman.ValidClientID(tt.id); (err == nil) != tt.valid {
				t.Errorf("ValidClientID(%q) = %v, want ok %v", tt.id, err, tt.valid)
			} else if err != nil && !gearman.Permanent(err) {
				t.Errorf("ValidClientID error %v is not permanent", err)
			}
			fn := funcName(t, "id")
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			var req []byte
			req = gearman.AppendPacket(req, gearman.MagicReq, gearman.PktSetClientID, []byte(tt.id))
			req = gearman.AppendPacket(req, gearman.MagicReq, gearman.PktCanDo, []byte(fn))
			req = gearman.AppendPacket(req, gearman.MagicReq, gearman.PktEchoReq, []byte("alive"))
			if _, err := nc.Write(req); err != nil {
				t.Fatal(err)
			}
			// SET_CLIENT_ID has no reply: the first one is the echo's.
			p, err := gearman.NewPacketReader(nc, 0, 0).ReadPacket()
			if err != nil || p.Type != gearman.PktEchoRes {
				t.Fatalf("after SET_CLIENT_ID: %v %v, want ECHO_RES on an open connection", p, err)
			}
			out := rawAdmin(t, srv.Addr(), "workers")
			if !strings.Contains(out, " "+tt.shown+" : "+fn+"\n") {
				t.Fatalf("workers does not show the ID as %q:\n%q", tt.shown, out)
			}
			roundTrip := false
			if ws, err := gearman.ParseWorkers([]byte(out)); err == nil {
				for _, w := range ws {
					if len(w.Functions) == 1 && w.Functions[0] == fn {
						roundTrip = w.ClientID == tt.id
					}
				}
			}
			if tt.valid && !roundTrip {
				t.Errorf("valid ID %q does not come back unchanged from workers:\n%q", tt.id, out)
			}
		})
	}
	t.Run("DialWorker refuses an invalid ID", func(t *testing.T) {
		_, err := gearman.DialWorker(testContext(t), srv.Addr(), gearman.WorkerOptions{ClientID: strings.Repeat("x", 128)})
		if !errors.Is(err, gearman.ErrInvalidArgument) {
			t.Fatalf("DialWorker with a 128-byte client ID: %v, want ErrInvalidArgument", err)
		}
	})
}

// rawAdmin runs one multi-line admin command and returns the reply as sent.
func rawAdmin(t *testing.T, addr, cmd string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("admin %s: %v after %q", cmd, err, b.String())
		}
		b.WriteString(line)
		if line == ".\n" {
			return b.String()
		}
	}
}
