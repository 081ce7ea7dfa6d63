package gearmantest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

func TestStartRestartStop(t *testing.T) {
	s := gearmantest.Start(t)
	addr := s.Addr()
	ping(t, addr)

	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, s.Addr())
	}
	ping(t, addr)

	s.Stop()
	s.Stop() // idempotent
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("gearmand still accepts connections on %s after Stop", addr)
	}
}

func TestTwoServersGetDistinctPorts(t *testing.T) {
	a, b := gearmantest.Start(t), gearmantest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
}

// ping checks that the server answers the admin "version" command.
func ping(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := c.Write([]byte("version\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || n < 3 || string(buf[:3]) != "OK " {
		t.Fatalf("version reply %q, %v", buf[:n], err)
	}
}
