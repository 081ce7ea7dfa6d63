package modgearman

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func assertResultEqual(t *testing.T, got, want Result) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result mismatch:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseResultOrders(t *testing.T) {
	want := Result{
		HostName: "host1", ServiceDescription: "svc1",
		CoreStartTime: ts(1675372834, 8), StartTime: ts(1675372834, 0), FinishTime: ts(1675372835, 250000),
		ReturnCode: 2, ExitedOK: true, Source: "Mod-Gearman Worker @ w1",
		Output: "CRITICAL - down\nlong line|perf=1",
	}
	goWant := want
	goWant.Type = ResultActive
	for _, tc := range []struct {
		name string
		text string
		want Result
	}{
		{
			name: "C worker",
			text: "host_name=host1\ncore_start_time=1675372834.000008\nstart_time=1675372834.000000\nfinish_time=1675372835.250000\nreturn_code=2\nexited_ok=1\nsource=Mod-Gearman Worker @ w1\nservice_description=svc1\noutput=CRITICAL - down\\nlong line|perf=1\n\n\n\n",
			want: want,
		},
		{
			name: "Go worker",
			text: "type=active\nhost_name=host1\nservice_description=svc1\ncore_start_time=1675372834.000008\nstart_time=1675372834.000000\nfinish_time=1675372835.250000\nreturn_code=2\nexited_ok=1\nsource=Mod-Gearman Worker @ w1\noutput=CRITICAL - down\\nlong line|perf=1\n",
			want: goWant,
		},
		{
			name: "C send_gearman (spec §2.7 order)",
			text: "type=passive\nhost_name=h\nstart_time=10.000000\nfinish_time=11.000000\nlatency=0.250000\nreturn_code=1\nsource=send_gearman\nservice_description=s\noutput=WARN \\\\ path C:\\\\x\n\n",
			want: Result{
				Type: ResultPassive, HostName: "h", ServiceDescription: "s", StartTime: ts(10, 0), FinishTime: ts(11, 0),
				Latency: 250 * time.Millisecond, HasLatency: true, ReturnCode: 1, ExitedOK: true,
				Source: "send_gearman", Output: `WARN \\ path C:\\x`,
			},
		},
		{
			name: "Go send_gearman host result, integer times",
			text: "type=passive\nhost_name=h\nstart_time=10\nfinish_time=10\nreturn_code=0\nsource=send_gearman\noutput=UP\n",
			want: Result{Type: ResultPassive, HostName: "h", StartTime: ts(10, 0), FinishTime: ts(10, 0), ExitedOK: true, Source: "send_gearman", Output: "UP"},
		},
		{
			name: "empty output accepted",
			text: "host_name=h\noutput=\n",
			want: Result{HostName: "h", ExitedOK: true},
		},
		{
			name: "flags, extras, out-of-bounds rc",
			text: "host_name=h\nexited_ok=0\nearly_timeout=1\nreturn_code=42\ncheck_options=0\nscheduled_check=1\ncore_start_time=0\noutput=x\n",
			want: Result{
				HostName: "h", ReturnCode: 42, EarlyTimeout: true, Output: "x",
				Extra: []KV{{"check_options", "0"}, {"scheduled_check", "1"}},
			},
		},
		{
			name: "stops at the first empty line",
			text: "host_name=h\noutput=first\n\noutput=second\n",
			want: Result{HostName: "h", ExitedOK: true, Output: "first"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResult([]byte(tc.text))
			if err != nil {
				t.Fatalf("ParseResult: %v", err)
			}
			assertResultEqual(t, got, tc.want)
		})
	}
}

func TestParseResultErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{"empty", "", []string{`missing key "host_name"`, "encryption settings"}},
		{"no host_name", "type=active\noutput=x\n", []string{`missing key "host_name"`, "encryption settings"}},
		{"empty host_name", "host_name=\noutput=x\n", []string{`missing key "host_name"`}},
		{"no output", "host_name=h\nreturn_code=0\n", []string{`missing key "output"`, "encryption settings"}},
		{"output after terminator", "host_name=h\n\noutput=x\n", []string{`missing key "output"`}},
		{"line without =", "host_name=h\nOK all fine\noutput=x\n", []string{"line 2", "no '='"}},
		{"bad return_code", "host_name=h\nreturn_code=OK\noutput=x\n", []string{"line 2", `"return_code"`}},
		{"bad exited_ok", "host_name=h\nexited_ok=yes\noutput=x\n", []string{"line 2", `"exited_ok"`}},
		{"bad early_timeout", "host_name=h\nearly_timeout=true\noutput=x\n", []string{"line 2", `"early_timeout"`}},
		{"bad start_time", "host_name=h\nstart_time=now\noutput=x\n", []string{"line 2", `"start_time"`}},
		{"bad finish_time", "host_name=h\nfinish_time=1.2.3\noutput=x\n", []string{"line 2", `"finish_time"`}},
		{"bad core_start_time", "host_name=h\ncore_start_time= 1\noutput=x\n", []string{"line 2", `"core_start_time"`}},
		{"bad latency", "host_name=h\nlatency=1s\noutput=x\n", []string{"line 2", `"latency"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseResult([]byte(tc.text))
			if err == nil {
				t.Fatal("ParseResult succeeded, want error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "parse result: ") {
				t.Errorf("error %q lacks the parse result prefix", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestResultMarshal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		res     Result
		passive bool
		want    string
	}{
		{
			name: "worker host result, defaults",
			res:  Result{HostName: "h", StartTime: ts(1, 0), FinishTime: ts(2, 0), Output: "UP\nmore"},
			want: "type=active\nhost_name=h\nstart_time=1.000000\nfinish_time=2.000000\nreturn_code=0\nexited_ok=0\noutput=UP\\nmore\n",
		},
		{
			name: "worker, all optional keys",
			res: Result{
				Type: ResultPassive, HostName: "h", ServiceDescription: "s", CoreStartTime: ts(1, 1),
				StartTime: ts(2, 0), FinishTime: ts(3, 0), Latency: time.Second, HasLatency: true,
				ReturnCode: 3, ExitedOK: true, EarlyTimeout: true, Source: "src",
				Extra: []KV{{"check_options", "0"}, {"skip", ""}}, Output: `a\b`,
			},
			want: "type=passive\nhost_name=h\nservice_description=s\ncore_start_time=1.000001\nstart_time=2.000000\nfinish_time=3.000000\nlatency=1.000000\nreturn_code=3\nexited_ok=1\nearly_timeout=1\nsource=src\ncheck_options=0\noutput=a\\b\n",
		},
		{
			name:    "passive host result with --active",
			res:     Result{Type: ResultActive, HostName: "h", StartTime: ts(5, 0), FinishTime: ts(5, 0), ReturnCode: 1, Source: "send_gearman", Output: ""},
			passive: true,
			want:    "type=active\nhost_name=h\nstart_time=5.000000\nfinish_time=5.000000\nlatency=0.000000\nreturn_code=1\nsource=send_gearman\noutput=\n\n",
		},
		{
			name:    "passive, default type, no times",
			res:     Result{HostName: "h", CoreStartTime: ts(9, 0), EarlyTimeout: true, Output: "x"},
			passive: true,
			want:    "type=passive\nhost_name=h\nlatency=0.000000\nreturn_code=0\noutput=x\n\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			if tc.passive {
				got = tc.res.MarshalPassive()
			} else {
				got = tc.res.Marshal()
			}
			if string(got) != tc.want {
				t.Fatalf("marshal:\n got %q\nwant %q", got, tc.want)
			}
			if _, err := ParseResult(got); err != nil {
				t.Errorf("ParseResult of marshalled text: %v", err)
			}
		})
	}
}
