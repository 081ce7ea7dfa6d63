package bridge

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSleepGate: maxSleepers callers may sleep, the rest wait and are let
// in one at a time, by a sleeper leaving or by letIn; a waiter whose
// context ends is gone from the queue.
func TestSleepGate(t *testing.T) {
	var g sleepGate
	ctx := t.Context()
	for i := range maxSleepers {
		if sleep, err := g.acquire(ctx); !sleep || err != nil {
			t.Fatalf("caller %d: sleep=%v err=%v, want to sleep", i, sleep, err)
		}
	}
	type got struct {
		i     int
		sleep bool
		err   error
	}
	out := make(chan got, 3)
	cctx, cancel := context.WithCancel(ctx)
	for i := range 3 {
		c := ctx
		if i == 2 {
			c = cctx
		}
		go func() {
			sleep, err := g.acquire(c)
			out <- got{i, sleep, err}
		}()
		waitQueued(t, &g, i+1)
	}
	none := func(what string) {
		t.Helper()
		select {
		case r := <-out:
			t.Fatalf("%s: waiter %d returned (sleep=%v err=%v)", what, r.i, r.sleep, r.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	one := func(what string, want int) {
		t.Helper()
		select {
		case r := <-out:
			if r.i != want || r.sleep || r.err != nil {
				t.Fatalf("%s: waiter %d sleep=%v err=%v, want waiter %d let in", what, r.i, r.sleep, r.err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no waiter let in", what)
		}
	}
	none("gate full")
	g.leave()
	one("a sleeper woke", 0)
	none("one let in per wake-up")
	g.letIn()
	one("a grab found work", 1)
	cancel()
	select {
	case r := <-out:
		if r.i != 2 || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled waiter: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled waiter still waits")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiters) != 0 || g.sleepers != maxSleepers-1 {
		t.Fatalf("waiters=%d sleepers=%d, want 0 and %d", len(g.waiters), g.sleepers, maxSleepers-1)
	}
}

func waitQueued(t *testing.T, g *sleepGate, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		k := len(g.waiters)
		g.mu.Unlock()
		if k == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", k, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSleepGateNeverStrands: sessions that sleep, wake and wait at random
// all get through many rounds. A waiter is only ever queued while the gate
// is full, so the sleepers' wake-ups reach every one of them.
func TestSleepGateNeverStrands(t *testing.T) {
	var g sleepGate
	ctx := t.Context()
	var rounds atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 200 {
				sleep, err := g.acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if sleep {
					time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
					g.leave()
				} else if rand.IntN(2) == 0 {
					g.letIn()
				}
				rounds.Add(1)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("stranded: %d of %d rounds done", rounds.Load(), 20*200)
	}
}
