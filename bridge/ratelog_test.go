package bridge

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestRateLogOneLinePerKeyAndInterval: the first line of a key is written,
// repeats within the interval are only counted, and the next line after
// the interval carries suppressed=N. Keys are independent.
func TestRateLogOneLinePerKeyAndInterval(t *testing.T) {
	var buf syncBuffer
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	log := slog.New(slog.NewTextHandler(&buf, nil))
	rl := newRateLog(10*time.Second, clk.now)

	for range 5 {
		rl.Warn(log, "peer-a", "refused worker session", "identity", "a")
	}
	rl.Warn(log, "peer-b", "refused worker session", "identity", "b")
	clk.advance(9 * time.Second)
	rl.Warn(log, "peer-a", "refused worker session", "identity", "a")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("%d lines within the interval, want one per key:\n%s", got, buf.String())
	}
	if strings.Contains(buf.String(), "suppressed") {
		t.Fatalf("first lines carry a suppressed count:\n%s", buf.String())
	}
	clk.advance(time.Second)
	rl.Warn(log, "peer-a", "refused worker session", "identity", "a")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "identity=a suppressed=5") {
		t.Fatalf("after the interval, want a line with suppressed=5:\n%s", buf.String())
	}
	// The count starts again after it was reported.
	clk.advance(10 * time.Second)
	rl.Warn(log, "peer-a", "refused worker session", "identity", "a")
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || strings.Contains(lines[3], "suppressed") {
		t.Fatalf("a quiet interval reports nothing suppressed:\n%s", buf.String())
	}
}

// TestRateLogMessagesAreSeparateKeys: the same key under two messages is
// limited separately, and levels are kept.
func TestRateLogMessagesAreSeparateKeys(t *testing.T) {
	var buf syncBuffer
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	log := slog.New(slog.NewTextHandler(&buf, nil))
	rl := newRateLog(10*time.Second, clk.now)
	rl.Warn(log, "x", "one")
	rl.Error(log, "x", "two")
	out := buf.String()
	if !strings.Contains(out, "level=WARN msg=one") || !strings.Contains(out, "level=ERROR msg=two") {
		t.Fatalf("got:\n%s", out)
	}
}

// TestRateLogBoundedKeys: a flood of distinct keys (say, one per source
// port) does not grow the table without bound; once it is full, further
// new keys share one limit, so the log stays quiet too.
func TestRateLogBoundedKeys(t *testing.T) {
	var buf syncBuffer
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	log := slog.New(slog.NewTextHandler(&buf, nil))
	rl := newRateLog(10*time.Second, clk.now)
	for i := range 3 * rateLogMaxKeys {
		rl.Warn(log, fmt.Sprint(i), "handshake failed")
	}
	rl.mu.Lock()
	n := len(rl.keys)
	rl.mu.Unlock()
	if n > rateLogMaxKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", n, rateLogMaxKeys+1)
	}
	if lines := strings.Count(buf.String(), "\n"); lines > rateLogMaxKeys+1 {
		t.Fatalf("%d lines for a flood of new keys", lines)
	}
	// Keys whose interval has passed make room again.
	clk.advance(11 * time.Second)
	rl.Warn(log, "fresh", "handshake failed")
	if !strings.HasSuffix(strings.TrimSpace(buf.String()), "msg=\"handshake failed\"") {
		t.Fatalf("a new key after the interval was not logged:\n%s", buf.String()[max(0, len(buf.String())-300):])
	}
}
