package nebe2e

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// holdProxy forwards TCP connections to target; while held nothing moves
// in either direction (connections stay open), as a module too busy to
// read its sockets.
type holdProxy struct {
	lis    net.Listener
	target string

	mu   sync.Mutex
	cond *sync.Cond
	held bool
	done bool
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{lis: lis, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() {
		p.hold(false)
		p.mu.Lock()
		p.done = true
		p.mu.Unlock()
		_ = lis.Close()
	})
	return p
}

func (p *holdProxy) addr() string { return p.lis.Addr().String() }

func (p *holdProxy) hold(on bool) {
	p.mu.Lock()
	p.held = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *holdProxy) wait() {
	p.mu.Lock()
	for p.held && !p.done {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

func (p *holdProxy) serve() {
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

func (p *holdProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFakeCoreOrphanWaitsForResultBacklog: the module stops reading
// gearmand (its connections held) while a check's real result waits in
// check_results past the check's timeout plus orphan_grace. No orphan
// result is made meanwhile; once the module reads again the check gets its
// real result, and only the check whose result never came is orphaned.
func TestFakeCoreOrphanWaitsForResultBacklog(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			px := newHoldProxy(t, srv.Addr())
			codec, _ := modgearman.NewCodec(key, true)
			fc := startFakeCore(t, l.name, "server="+px.addr()+" key="+key+" services=yes orphan_grace=1s")
			fc.do("OK", "timeout 1 1")
			fc.do("RC 206", "svc h1 answered 0 /bin/check_a")
			fc.do("RC 206", "svc h1 silent 0 /bin/check_s")
			// Both jobs are in gearmand before the module is held.
			for _, svc := range []string{"answered", "silent"} {
				if j := decodeJob(t, codec, grabJob(t, srv.Addr(), "service")); j.ServiceDescription == "" {
					t.Fatalf("job for %s: %+v", svc, j)
				}
			}
			px.hold(true)
			client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			now := time.Now()
			r := modgearman.Result{Type: "active", HostName: "h1", ServiceDescription: "answered", StartTime: now,
				FinishTime: now, ReturnCode: 0, ExitedOK: true, Output: "real"}
			if _, err := client.Submit(ctx, "check_results", "", codec.Encode(r.Marshal()), gearman.PriorityNormal, true); err != nil {
				t.Fatal(err)
			}
			// Deadlines (timeout 1s + grace 1s) pass while the result waits.
			if got := fc.do("WAITED", "wait 1 4000"); got != "WAITED 0" {
				t.Fatalf("a result while the module was behind: %s %v", got, fc.results())
			}
			px.hold(false)
			if got := fc.do("WAITED", "wait 2 10000"); got != "WAITED 2" {
				t.Fatalf("after catching up: %s", got)
			}
			got := map[string]map[string]string{}
			for _, r := range fc.results() {
				got[r["svc"]] = r
			}
			if r := got["answered"]; r == nil || !strings.HasPrefix(r["output"], "real") {
				t.Errorf("answered check got %v, want its real result", r)
			}
			if r := got["silent"]; r == nil || !strings.Contains(r["output"], "orphaned") {
				t.Errorf("silent check got %v, want the orphan result", r)
			}
			if got := fc.do("WAITED", "wait 1 1500"); got != "WAITED 0" {
				t.Errorf("a third result: %s %v", got, fc.results())
			}
			st := stats(t, fc)
			if n, _ := st.Module["WatchdogOrphans"].(float64); n != 1 {
				t.Errorf("WatchdogOrphans = %v, want 1", st.Module["WatchdogOrphans"])
			}
			// "answered" was deferred; "silent", whose deadline is a little
			// later, may have expired only once the module caught up.
			if n, _ := st.Module["OrphansDeferred"].(float64); n < 1 || n > 2 {
				t.Errorf("OrphansDeferred = %v, want 1 or 2", st.Module["OrphansDeferred"])
			}
			fc.do("BYE", "quit")
		})
	}
}
