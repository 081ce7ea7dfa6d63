package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"
)

// blackHole forwards TCP connections to target. While paused it is a cut
// network link: connections stay open, nothing moves in either direction
// and new connections are accepted but wait, until resume lets everything
// through again (what was held back included).
type blackHole struct {
	lis    net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newBlackHole(t *testing.T, target string) *blackHole {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackHole{lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *blackHole) addr() string { return p.lis.Addr().String() }

func (p *blackHole) close() {
	_ = p.lis.Close()
	p.mu.Lock()
	p.closed, p.paused = true, false
	for c := range p.conns {
		_ = c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *blackHole) pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *blackHole) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// gate waits while the link is cut; false once the proxy is closed.
func (p *blackHole) gate() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.paused && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

func (p *blackHole) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *blackHole) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *blackHole) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			_ = in.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(in)
			if !p.gate() {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil || !p.track(out) {
				if out != nil {
					_ = out.Close()
				}
				return
			}
			defer p.untrack(out)
			done := make(chan struct{}, 2)
			go func() { p.pipe(out, in); done <- struct{}{} }()
			go func() { p.pipe(in, out); done <- struct{}{} }()
			<-done
			_ = in.Close()
			_ = out.Close()
			<-done
		}()
	}
}

// pipe copies src to dst, holding every write while the link is cut.
func (p *blackHole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// countIn is how often re matches in p's log now.
func countIn(p *proc, re *regexp.Regexp) int {
	b, _ := os.ReadFile(p.log)
	return len(re.FindAll(b, -1))
}

// TestBlackHoleCutReattaches cuts the network between eight worker
// processes and the bridge as a black hole (nothing moves, connections
// stay open, new ones hang) long enough for every worker to notice (its
// keepalive) and to have its reconnect attempts time out waiting for the
// welcome, then restores it. Every worker must attach again within 30 s,
// every check must be answered exactly once, and the bridge must refuse
// no result of a job it still holds.
func TestBlackHoleCutReattaches(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startBridge("bridge", "127.0.0.1:0", "--resume-grace", "5m")
	proxy := newBlackHole(t, baddr)
	const nw = 8
	var ws []*proc
	for i := range nw {
		ws = append(ws, c.startWorker(fmt.Sprintf("wcut%d", i), proxy.addr(), "--services", "--hosts", "--max-workers", "4"))
	}
	for _, w := range ws {
		c.waitLog(w, `session started`, 30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Some checks end while the link is cut: their results wait in the
	// cut link and on the workers, and come again on the resumed session.
	const n = 48
	for i := range n {
		sleep := "0"
		if i >= 16 {
			sleep = "4"
		}
		queue, j := checkJob(i, check, 0, sleep, time.Now())
		j.Timeout = 5 * time.Minute // no timeout result during the cut
		c.submit(ctx, queue, j)
	}
	first := c.collect("check_results", 16, time.Minute)

	attachedRx := regexp.MustCompile(`msg="session (resumed|started)"`)
	lostRx := regexp.MustCompile(`msg="lost the bridge; reconnecting"`)
	before := make([]int, nw)
	for i, w := range ws {
		before[i] = countIn(w, attachedRx)
	}
	proxy.pause()
	t.Log("network cut")
	cutEnd := time.Now().Add(90 * time.Second)
	for i, w := range ws {
		// The keepalive (20 s ping, 10 s wait) notices the cut.
		c.countLog(w, lostRx.String(), 1, 45*time.Second)
		t.Logf("wcut%d noticed the cut", i)
	}
	// Long enough for a reconnect attempt of every worker to run into
	// the handshake timeout (10 s) while the link is still cut.
	time.Sleep(min(15*time.Second, time.Until(cutEnd)))
	proxy.resume()
	resumed := time.Now()
	t.Log("network back")

	deadline := resumed.Add(30 * time.Second)
	for {
		var missing []string
		for i, w := range ws {
			if countIn(w, attachedRx) <= before[i] {
				missing = append(missing, w.name)
			}
		}
		if len(missing) == 0 {
			t.Logf("all workers attached again %v after the network came back", time.Since(resumed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			for _, w := range ws {
				b, _ := os.ReadFile(w.log)
				t.Logf("%s:\n%s", w.name, b)
			}
			t.Fatalf("workers %v did not attach again within 30 s after the network came back", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}

	rest := c.collect("check_results", n-len(first), 2*time.Minute)
	got := map[int]int{}
	for _, r := range append(first, rest...) {
		got[idOf(t, r.HostName)]++
	}
	for i := range n {
		if got[i] != 1 {
			t.Errorf("check %d: %d results", i, got[i])
		}
	}
	// Wait a little for late duplicates, then look at the bridge's log.
	time.Sleep(2 * time.Second)
	b, _ := os.ReadFile(bp.log)
	if m := regexp.MustCompile(`.*refused result.*`).FindAll(b, -1); len(m) > 0 {
		t.Errorf("the bridge refused results:\n%s", m)
	}
}
