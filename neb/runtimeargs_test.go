package neb

import "testing"

func TestSplitRuntimeArgs(t *testing.T) {
	rest, rt, err := SplitRuntimeArgs("config=/etc/x.conf gomaxprocs=2 server=a gogc=off gomemlimit=256MiB")
	if err != nil || rest != "config=/etc/x.conf server=a" || rt.GOMAXPROCS != 2 || rt.GOGC != -1 || rt.MemLimit != 256<<20 {
		t.Errorf("rest %q rt %+v err %v", rest, rt, err)
	}
	for _, bad := range []string{"gomaxprocs=0", "gogc=x", "gomemlimit=lots", "gomemlimit=-1", "gomemlimit=8589934592GiB"} {
		if _, _, err := SplitRuntimeArgs(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if rest, rt, err := SplitRuntimeArgs("server=a"); err != nil || rest != "server=a" || rt != (RuntimeArgs{}) {
		t.Errorf("plain line changed: %q %+v %v", rest, rt, err)
	}
}

func FuzzSplitRuntimeArgs(f *testing.F) {
	f.Add("config=/x gomaxprocs=2 gogc=off gomemlimit=1GiB server=a")
	f.Add("gomemlimit=9999999999999999999GiB")
	f.Fuzz(func(t *testing.T, line string) {
		rest, rt, err := SplitRuntimeArgs(line)
		if err != nil {
			return
		}
		if rt.GOMAXPROCS < 0 || rt.MemLimit < 0 {
			t.Errorf("negative values %+v", rt)
		}
		if len(rest) > len(line) {
			t.Errorf("rest %q longer than %q", rest, line)
		}
	})
}
