package neb

import "testing"

func TestOutboxWakesOnceAndBounds(t *testing.T) {
	wakes := 0
	o := NewOutbox(2, func() { wakes++ })
	if !o.Push(CheckResult{HostName: "a"}) || !o.Push(CheckResult{HostName: "b"}) {
		t.Fatal("push refused")
	}
	if o.Push(CheckResult{HostName: "c"}) || o.Dropped() != 1 {
		t.Errorf("full outbox accepted a result (dropped %d)", o.Dropped())
	}
	if wakes != 1 {
		t.Errorf("%d wakes for one empty→non-empty transition", wakes)
	}
	rs := o.Take(nil)
	if len(rs) != 2 || rs[0].HostName != "a" || rs[1].HostName != "b" || o.Len() != 0 {
		t.Errorf("take %+v, len %d", rs, o.Len())
	}
	o.Push(CheckResult{HostName: "d"})
	if wakes != 2 {
		t.Errorf("no wake after the outbox was emptied")
	}
	if rs := o.Take(rs); len(rs) != 1 || rs[0].HostName != "d" {
		t.Errorf("take %+v", rs)
	}
}
