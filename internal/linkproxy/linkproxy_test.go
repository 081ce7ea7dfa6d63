package linkproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with itself.
func echoServer(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = c.Write([]byte(l))
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// TestPauseHoldsAndResumeDelivers: a paused proxy moves nothing and keeps
// the connection; on resume what was held arrives. Refuse closes it.
func TestPauseHoldsAndResumeDelivers(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string, wait time.Duration) (string, error) {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	if got, err := roundTrip("one\n", 5*time.Second); got != "one\n" || err != nil {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
	p.Pause()
	if got, err := roundTrip("two\n", 200*time.Millisecond); err == nil {
		t.Fatalf("paused proxy let %q through", got)
	}
	p.Resume()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); got != "two\n" || err != nil {
		t.Fatalf("after resume: %q %v", got, err)
	}
	p.Refuse(true)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("refusing proxy kept the connection")
	}
}
