//go:build soak

package nebe2e

import (
	"net"
	"sync"
	"testing"
)

// soakProxy forwards TCP connections to target. pause makes it a black
// hole, as a cut network link: connections stay open, nothing moves in
// either direction and new connections wait, until resume lets everything
// through again. refuse closes every connection and refuses new ones, as a
// peer that is down.
type soakProxy struct {
	lis    net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	refused bool
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newSoakProxy(t *testing.T, target string) *soakProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &soakProxy{lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *soakProxy) addr() string { return p.lis.Addr().String() }

func (p *soakProxy) close() {
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

func (p *soakProxy) pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *soakProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *soakProxy) refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = on
	if on {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// gate waits while the proxy is paused; false when it is closed.
func (p *soakProxy) gate() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.paused && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

func (p *soakProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.refused {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *soakProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *soakProxy) serve() {
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
			if err != nil {
				return
			}
			if !p.track(out) {
				_ = out.Close()
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

// pipe copies src to dst, holding every write while the proxy is paused.
func (p *soakProxy) pipe(dst, src net.Conn) {
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
