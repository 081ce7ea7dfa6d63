package sender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostTransport decides each result's fate by the prefix of its host name:
// "ok" is accepted, "refuse" refused for good, "retry" refused for now;
// with fix set, "retry" is accepted too; hosts in refuse are refused for
// good whatever their name. It records what it accepted.
type hostTransport struct {
	mu     sync.Mutex
	fix    bool
	refuse map[string]bool
	got    []string
}

func (h *hostTransport) Send(_ context.Context, rs []Result) []Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Outcome, len(rs))
	for i, r := range rs {
		switch {
		case strings.HasPrefix(r.Host, "refuse") || h.refuse[r.Host]:
			out[i] = Outcome{Reason: "not allowed: " + r.Host}
		case strings.HasPrefix(r.Host, "retry") && !h.fix:
			out[i] = Outcome{Retry: true, Reason: "gearmand unavailable"}
		default:
			out[i] = Outcome{Accepted: true}
			h.got = append(h.got, r.Host)
		}
	}
	return out
}

func (h *hostTransport) Close() error { return nil }

func (h *hostTransport) delivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func (h *hostTransport) repair() {
	h.mu.Lock()
	h.fix = true
	h.mu.Unlock()
}

func hosts(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Host)
	}
	return out
}

// deadHosts returns the hosts of every result in dir/dead, sorted by file.
func deadHosts(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, deadDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ent, err := decodeEntry(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, hosts(ent.Results)...)
	}
	return out
}

func res(host string) Result {
	t0 := time.Unix(1700000000, 0).UTC()
	return Result{Host: host, Output: "out of " + host, Start: t0, Finish: t0}
}

// TestDrainFailsPartWay: when a drain fails after the receiver accepted
// some results (dead/ cannot be written, the disk is full), those results
// have left the spool already; the next drain delivers the others, none
// twice and none lost.
func TestDrainFailsPartWay(t *testing.T) {
	enospc := func(string) error { return fmt.Errorf("write: %w", syscall.ENOSPC) }
	tests := []struct {
		name    string
		entries [][]string // one Append each
		// break is applied before the first drain and undone before the
		// second; it gets the spool directory.
		breakFS func(t *testing.T, sp *Spool) (undo func())
		// After the first drain:
		delivered1, spooled1 []string
		// After the second drain (transport repaired):
		delivered2, dead2 []string
	}{
		{
			name:       "dead/ broken, one entry",
			entries:    [][]string{{"ok-a", "refuse-b", "retry-c"}},
			breakFS:    breakDead,
			delivered1: []string{"ok-a"}, spooled1: []string{"refuse-b", "retry-c"},
			delivered2: []string{"ok-a", "retry-c"}, dead2: []string{"refuse-b"},
		},
		{
			name:       "dead/ broken, accepted entry after the refused one",
			entries:    [][]string{{"refuse-a"}, {"ok-b"}, {"ok-c", "retry-d"}},
			breakFS:    breakDead,
			delivered1: []string{"ok-b", "ok-c"}, spooled1: []string{"refuse-a", "retry-d"},
			delivered2: []string{"ok-b", "ok-c", "retry-d"}, dead2: []string{"refuse-a"},
		},
		{
			name:    "disk full: no entry can be rewritten",
			entries: [][]string{{"ok-a", "retry-b", "ok-c"}, {"ok-d"}},
			breakFS: func(t *testing.T, sp *Spool) func() {
				sp.fs.writeDurable = func(string, string, []byte) error { return enospc("") }
				return func() { sp.fs.writeDurable = writeDurable }
			},
			delivered1: []string{"ok-a", "ok-c", "ok-d"}, spooled1: []string{"retry-b"},
			delivered2: []string{"ok-a", "ok-c", "ok-d", "retry-b"},
		},
		{
			name:    "delivered entry cannot be removed",
			entries: [][]string{{"ok-a"}, {"retry-b"}},
			breakFS: func(t *testing.T, sp *Spool) func() {
				sp.fs.remove = func(string) error { return fmt.Errorf("remove: %w", syscall.EIO) }
				return func() { sp.fs.remove = os.Remove }
			},
			delivered1: []string{"ok-a"}, spooled1: []string{"retry-b"},
			delivered2: []string{"ok-a", "retry-b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			sp, err := OpenSpool(SpoolConfig{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.entries {
				var rs []Result
				for _, h := range e {
					rs = append(rs, res(h))
				}
				if err := sp.Append(ctx, rs); err != nil {
					t.Fatal(err)
				}
			}
			tr := &hostTransport{}
			undo := tt.breakFS(t, sp)
			if _, err := sp.Drain(ctx, tr); err == nil {
				t.Fatal("first drain did not fail")
			}
			got, err := sp.Results(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := tr.delivered(); !equal(d, tt.delivered1) || !equal(hosts(got), tt.spooled1) {
				t.Fatalf("after the failed drain: delivered %q, spooled %q; want %q, %q", d, hosts(got), tt.delivered1, tt.spooled1)
			}
			undo()
			tr.repair()
			dr, err := sp.Drain(ctx, tr)
			if err != nil || dr.Remaining != 0 {
				t.Fatalf("second drain: %+v, %v", dr, err)
			}
			if d, dead := tr.delivered(), deadHosts(t, dir); !equal(d, tt.delivered2) || !equal(dead, tt.dead2) {
				t.Fatalf("after the second drain: delivered %q, dead %q; want %q, %q", d, dead, tt.delivered2, tt.dead2)
			}
			if entries, _, _, _ := sp.Stats(ctx); entries != 0 {
				t.Fatalf("%d entries left", entries)
			}
		})
	}
}

// breakDead replaces dead/ with a file, so that nothing can be moved there.
func breakDead(t *testing.T, sp *Spool) func() {
	t.Helper()
	dead := filepath.Join(sp.Dir(), deadDir)
	if err := os.Remove(dead); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(dead); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dead, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// TestDrainDeadKeepsEarlierRefusals: results of one entry refused in two
// drains end up in two dead/ files; the second does not replace the first.
func TestDrainDeadKeepsEarlierRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sp, err := OpenSpool(SpoolConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Append(ctx, []Result{res("refuse-a"), res("retry-b")}); err != nil {
		t.Fatal(err)
	}
	tr := &hostTransport{}
	if _, err := sp.Drain(ctx, tr); !errors.Is(err, ErrUndelivered) {
		t.Fatalf("first drain: %v", err)
	}
	tr.mu.Lock()
	tr.refuse = map[string]bool{"retry-b": true}
	tr.mu.Unlock()
	if dr, err := sp.Drain(ctx, tr); err != nil || dr.Dead != 1 {
		t.Fatalf("second drain: %+v, %v", dr, err)
	}
	if dead := deadHosts(t, dir); !equal(dead, []string{"refuse-a", "retry-b"}) {
		t.Fatalf("dead/ holds %q", dead)
	}
}

// TestDrainCannotRewrite: when an entry can be neither rewritten nor
// overwritten, the drain says that its delivered results will be sent
// again, and the entry is left whole: nothing is lost.
func TestDrainCannotRewrite(t *testing.T) {
	ctx := context.Background()
	sp, err := OpenSpool(SpoolConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Append(ctx, []Result{res("ok-a"), res("retry-b")}); err != nil {
		t.Fatal(err)
	}
	fail := fmt.Errorf("write: %w", syscall.EIO)
	sp.fs.writeDurable = func(string, string, []byte) error { return fail }
	sp.fs.overwrite = func(string, []byte) error { return fail }
	dr, err := sp.Drain(ctx, &hostTransport{})
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "will be sent again") || dr.Delivered != 1 || dr.Remaining != 1 {
		t.Fatalf("drain: %+v, %v", dr, err)
	}
	got, err := sp.Results(ctx)
	if err != nil || !equal(hosts(got), []string{"ok-a", "retry-b"}) {
		t.Fatalf("spool holds %q, %v", hosts(got), err)
	}
}
