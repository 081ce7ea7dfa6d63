package sender

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDaemonSocketAndStream(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Every goroutine the daemon started has ended.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	tr := &fakeTransport{down: true}
	s, sp, _ := newTestSender(t, tr, SpoolConfig{})
	sock := filepath.Join(t.TempDir(), "send.sock")
	pr, pw := io.Pipe()
	d, err := NewDaemon(DaemonConfig{Sender: s, Socket: sock, Stdin: pr, DrainInterval: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		pw.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "sock%03d\tsvc\t%d\tout %d\n", i, i%4, i)
	}
	b.WriteString("broken line\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.UnixConn).CloseWrite()
	reply, err := io.ReadAll(bufio.NewReader(c))
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reply), "error line 101") || !strings.HasSuffix(string(reply), "100 data packet(s) accepted.\n") {
		t.Fatalf("reply %q", reply)
	}
	// The receiver is down: all 100 are spooled. Stream 50 more on stdin.
	for i := range 50 {
		fmt.Fprintf(pw, "stream%03d\t0\tok\n", i)
	}
	waitFor(t, func() bool { _, n, _, _ := sp.Stats(context.Background()); return n == 150 })
	tr.set(false)
	waitFor(t, func() bool { return len(tr.delivered()) == 150 })
	got := tr.delivered()
	for i := range 100 {
		if got[i].Host != fmt.Sprintf("sock%03d", i) || got[i].Service != "svc" {
			t.Fatalf("delivery %d: %+v", i, got[i])
		}
	}
	for i := range 50 {
		if got[100+i].Host != fmt.Sprintf("stream%03d", i) {
			t.Fatalf("delivery %d: %+v", 100+i, got[100+i])
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logLines is a goroutine-safe log sink for one test.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), sub)
}

// TestDaemonBacksOffWhileRefused: while the bridge refuses the sender
// itself (a certificate or permission problem), the daemon's attempts
// space out instead of coming every drain interval, and the refusal is one
// log line, not one per attempt; when the bridge accepts again the spool is
// delivered and the end of the failure is logged.
func TestDaemonBacksOffWhileRefused(t *testing.T) {
	tr := &fakeTransport{callFails: true}
	s, sp, _ := newTestSender(t, tr, SpoolConfig{})
	if err := sp.Append(context.Background(), []Result{{Host: "h", Service: "s", Output: "OK"}}); err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	d, err := NewDaemon(DaemonConfig{Sender: s, DrainInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(700 * time.Millisecond)
	tr.mu.Lock()
	calls := tr.calls
	tr.callFails = false
	tr.mu.Unlock()
	// Without backoff, 70 attempts; doubling from 10 ms makes about 6.
	if calls > 10 {
		t.Fatalf("%d attempts in 700ms while refused: no backoff", calls)
	}
	if n := logs.count("refuses this sender"); n != 1 {
		t.Fatalf("refusal logged %d times, want once:\n%s", n, logs.buf.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(tr.delivered()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("spool not delivered after the bridge accepted again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for logs.count("delivery works again") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("recovery not logged:\n%s", logs.buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
