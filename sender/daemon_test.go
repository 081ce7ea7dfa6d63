package sender

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
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
