package worker

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// TestRenewRunsWhileAttached: the renewal hook gets the session's
// connection once the bridge welcomed the worker, and is stopped (and
// waited for) when the stream ends, before the connection is closed.
func TestRenewRunsWhileAttached(t *testing.T) {
	b := newBridges(t, "a")
	started := make(chan grpc.ClientConnInterface, 4)
	stopped := make(chan struct{}, 4)
	deps := b.deps()
	deps.Renew = func(ctx context.Context, cc grpc.ClientConnInterface) {
		started <- cc
		<-ctx.Done()
		stopped <- struct{}{}
	}
	startWorker(t, testConfig("a"), deps)

	fs := b.accept("a")
	select {
	case <-started:
		t.Fatal("renewal started before the welcome")
	case <-time.After(50 * time.Millisecond):
	}
	fs.welcome("s1", false)
	select {
	case cc := <-started:
		if cc == nil {
			t.Fatal("no connection")
		}
	case <-time.After(waitTimeout):
		t.Fatal("renewal not started after the welcome")
	}
	fs.hangUp()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("renewal not stopped when the stream ended")
	}
	// The worker reconnects, and renewal runs again for the new stream.
	fs = b.accept("a")
	fs.welcome("s1", true)
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("renewal not started for the resumed stream")
	}
}
