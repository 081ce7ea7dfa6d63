package sender

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// latin1 returns results whose host, service and output are ISO-8859-1
// bytes, not valid UTF-8, as classic plugins and core configs produce them.
func latin1() []Result {
	t0 := time.Unix(1700000000, 0).UTC()
	return []Result{
		{Host: "h\xf4te-1", Service: "caf\xe9", ReturnCode: 1, Output: "r\xe9ponse lente|t=1s\nd\xe9tail \xff\xfe\x80", Start: t0, Finish: t0},
		{Host: "web1", Service: "Temp\xe9rature", ReturnCode: 2, Output: "CRITICAL - 42\xb0C", Start: t0, Finish: t0, Source: "s\xe9nd"},
		{Host: "web1", Service: "ok", Output: "valid UTF-8: caf\u00e9 \u2028 <&>", Start: t0, Finish: t0},
	}
}

// TestSpoolKeepsBytes: results that are not UTF-8 are spooled, read back
// and delivered byte for byte, and so are those a receiver refuses into
// dead/.
func TestSpoolKeepsBytes(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	dir := t.TempDir()
	s, sp, _ := newTestSender(t, tr, SpoolConfig{Dir: dir})
	want := latin1()
	if rep, err := s.Submit(ctx, want); err != nil || rep.Spooled != len(want) {
		t.Fatalf("submit while down: %+v, %v", rep, err)
	}
	got, err := sp.Results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, "spooled", got, want)

	tr.mu.Lock()
	tr.down, tr.refuse = false, map[string]bool{"h\xf4te-1": true}
	tr.mu.Unlock()
	dr, err := s.Drain(ctx)
	if err != nil || dr.Delivered != 2 || dr.Dead != 1 {
		t.Fatalf("drain: %+v, %v", dr, err)
	}
	checkResults(t, "delivered", tr.delivered(), want[1:])
	deadFiles, _ := filepath.Glob(filepath.Join(dir, deadDir, "*"))
	if len(deadFiles) != 1 {
		t.Fatalf("dead/ holds %v, want one file", deadFiles)
	}
	data, err := os.ReadFile(deadFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	ent, err := decodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, "dead", ent.Results, want[:1])
}

func checkResults(t *testing.T, what string, got, want []Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d: %#v", what, len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s %d:\n got %#v\nwant %#v", what, i, got[i], want[i])
		}
	}
}

// TestSpoolKeepsBytesOverGRPC: results spooled while the bridge is
// unavailable reach it byte for byte in the PassiveResult's bytes fields.
func TestSpoolKeepsBytesOverGRPC(t *testing.T) {
	ctx := context.Background()
	f := &fakeResultService{callErr: status.Error(codes.Unavailable, "bridge down")}
	tr := NewGRPCTransport(startFake(t, f), GRPCConfig{})
	s, _, _ := newTestSender(t, tr, SpoolConfig{})
	want := latin1()
	if rep, err := s.Submit(ctx, want); err != nil || rep.Spooled != len(want) {
		t.Fatalf("submit while down: %+v, %v", rep, err)
	}
	f.mu.Lock()
	f.callErr = nil
	f.mu.Unlock()
	if dr, err := s.Drain(ctx); err != nil || dr.Delivered != len(want) {
		t.Fatalf("drain: %+v, %v", dr, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != len(want) {
		t.Fatalf("bridge got %d results, want %d", len(f.got), len(want))
	}
	for i, p := range f.got {
		w := want[i]
		out := joinOutput(string(p.GetOutput()), string(p.GetPerfData()), string(p.GetLongOutput()))
		if string(p.GetHostName()) != w.Host || string(p.GetServiceDescription()) != w.Service || out != w.Output {
			t.Errorf("result %d: host %q service %q output %q; want %q %q %q",
				i, p.GetHostName(), p.GetServiceDescription(), out, w.Host, w.Service, w.Output)
		}
	}
}

// TestSpoolReadsOldEntries: an entry written before the spool kept bytes
// (plain JSON strings, testdata/spool/v1.spool) is read and delivered as it
// was written.
func TestSpoolReadsOldEntries(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("testdata/spool/v1.spool")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, seqName(1)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	tr := &fakeTransport{}
	s, sp, _ := newTestSender(t, tr, SpoolConfig{Dir: dir, MaxAge: 100 * 365 * 24 * time.Hour})
	st := time.Date(2026, 11, 30, 8, 14, 59, 500000000, time.UTC)
	fin := time.Date(2026, 11, 30, 8, 15, 0, 123456789, time.UTC)
	want := []Result{
		{Host: "web1", Service: "http", ReturnCode: 1, Output: "HTTP WARNING - 1.2s <slow> & \"late\"\nsecond line|time=1.2s;1;2", Start: st, Finish: fin},
		{Host: "db1", ReturnCode: 2, Output: "DOWN", Start: st, Finish: fin, Latency: 750 * time.Millisecond, Active: true, Source: "send_multi"},
		// The old format had already replaced these bytes; they stay as read.
		{Host: "mail1", Service: "caf\ufffd", Output: "r\ufffdponse", Start: st, Finish: fin},
	}
	got, err := sp.Results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, "read", got, want)
	if dr, err := s.Drain(ctx); err != nil || dr.Delivered != 3 {
		t.Fatalf("drain: %+v, %v", dr, err)
	}
	checkResults(t, "delivered", tr.delivered(), want)
}

// TestSpoolEntryRoundTrip: every field of Result survives the spool's
// encoding, whether its strings are UTF-8 or not; a new field in Result
// that the spool does not carry fails here.
func TestSpoolEntryRoundTrip(t *testing.T) {
	if n, m := reflect.TypeFor[Result]().NumField(), reflect.TypeFor[spoolResult]().NumField(); n != m {
		t.Fatalf("Result has %d fields, the spool's form %d", n, m)
	}
	full := Result{Host: "h", Service: "s", ReturnCode: 3, Output: "o", Start: time.Unix(1, 2).UTC(), Finish: time.Unix(3, 4).UTC(),
		Latency: 5, Active: true, Source: "src"}
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test result leaves %s zero", v.Type().Field(i).Name)
		}
	}
	bin := full
	bin.Host, bin.Service, bin.Output, bin.Source = "\xe9", "\xff", "a\x00\x80b", "\xfe"
	for _, ent := range []spoolEntry{
		{Created: time.Unix(10, 0).UTC(), Results: []Result{full, bin, {Host: "x"}}},
		{Created: time.Unix(11, 0).UTC(), Results: []Result{bin}, Reasons: []string{"refused: h\xf4te"}},
	} {
		data, err := encodeEntry(ent)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if !sameEntry(got, ent) {
			t.Fatalf("round trip through %s:\n got %#v\nwant %#v", data, got, ent)
		}
	}
}

// FuzzSpoolEntry: whatever bytes an entry file holds, reading it does not
// panic, and what it reads is written and read back unchanged.
func FuzzSpoolEntry(f *testing.F) {
	if data, err := os.ReadFile("testdata/spool/v1.spool"); err == nil {
		f.Add(data)
	}
	if data, err := encodeEntry(spoolEntry{Created: time.Unix(1700000000, 0).UTC(), Results: latin1()}); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ent, err := decodeEntry(data)
		if err != nil {
			return
		}
		again, err := encodeEntry(ent)
		if err != nil {
			t.Fatalf("encode %#v: %v", ent, err)
		}
		back, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("decode own encoding %s: %v", again, err)
		}
		if !sameEntry(back, ent) {
			t.Fatalf("round trip changed the entry:\n got %#v\nwant %#v", back, ent)
		}
	})
}

// sameEntry compares entries field by field, times by instant (a time read
// from JSON may carry a different *time.Location for the same offset).
func sameEntry(a, b spoolEntry) bool {
	if !a.Created.Equal(b.Created) || !slices.Equal(a.Reasons, b.Reasons) || len(a.Results) != len(b.Results) {
		return false
	}
	for i, r := range a.Results {
		o := b.Results[i]
		if !r.Start.Equal(o.Start) || !r.Finish.Equal(o.Finish) {
			return false
		}
		r.Start, r.Finish, o.Start, o.Finish = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if r != o {
			return false
		}
	}
	return true
}

// TestSpoolLazy: a lazy spool creates its directory only when it has to
// keep something; until then it is empty, and drains to nothing.
func TestSpoolLazy(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{}
	dir := filepath.Join(t.TempDir(), "state", "spool")
	s, sp, _ := newTestSender(t, tr, SpoolConfig{Dir: dir, Lazy: true})
	if rep, err := s.Submit(ctx, latin1()[:1]); err != nil || rep.Accepted != 1 {
		t.Fatalf("submit: %+v, %v", rep, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("delivered at once, yet %s exists (stat: %v)", dir, err)
	}
	if n, _, _, err := sp.Stats(ctx); n != 0 || err != nil {
		t.Fatalf("stats of an absent spool: %d entries, %v", n, err)
	}
	tr.mu.Lock()
	tr.down = true
	tr.mu.Unlock()
	if rep, err := s.Submit(ctx, latin1()[1:2]); err != nil || rep.Spooled != 1 {
		t.Fatalf("submit while down: %+v, %v", rep, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, deadDir)); err != nil || !fi.IsDir() {
		t.Fatalf("spooling did not create %s/%s: %v", dir, deadDir, err)
	}
}
