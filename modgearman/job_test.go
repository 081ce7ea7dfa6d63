package modgearman

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func assertJobEqual(t *testing.T, got, want Job) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("job mismatch:\n got %+v\nwant %+v", got, want)
	}
}

func ts(sec, usec int64) time.Time { return time.UnixMicro(sec*1e6 + usec).UTC() }

// TestJobMarshalOrder checks the key order of each job type against
// specification §2.2–§2.5.
func TestJobMarshalOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  Job
		want string
	}{
		{
			name: "host",
			job: Job{
				Type: JobHost, ResultQueue: "check_results", TargetQueue: "hostgroup_web",
				HostName: "web1", CoreTime: ts(1691536537, 288), Timeout: 30 * time.Second,
				CommandLine: "/bin/check_host -H web1",
			},
			want: "type=host\nresult_queue=check_results\ntarget_queue=hostgroup_web\nhost_name=web1\ncore_time=1691536537.000288\ntimeout=30\ncommand_line=/bin/check_host -H web1\n\n\n",
		},
		{
			name: "eventhandler",
			job: Job{
				Type: JobEventHandler, StartTime: ts(1700000000, 5), CoreTime: ts(1700000000, 5),
				CommandLine: "/bin/restart httpd",
			},
			want: "type=eventhandler\nstart_time=1700000000.000005\ncore_time=1700000000.000005\ncommand_line=/bin/restart httpd\n\n\n",
		},
		{
			name: "notification",
			job: Job{
				Type: JobNotification, StartTime: ts(1700000000, 0), CoreTime: ts(1700000001, 0),
				Contact: "GLOBAL", CommandLine: "/bin/notify 'a\nb'", PluginOutput: "CRIT - down",
				LongPluginOutput: "line1\nline2",
			},
			want: "type=notification\nstart_time=1700000000.000000\ncore_time=1700000001.000000\ncontact=GLOBAL\ncommand_line=/bin/notify 'a\\nb'\nplugin_output=CRIT - down\nlong_plugin_output=line1\\nline2\n\n\n",
		},
		{
			name: "legacy keys and extras",
			job: Job{
				Type: JobHost, HostName: "h", CommandLine: "c", NextCheck: ts(5, 0),
				CheckOptions: 2, ScheduledCheck: true, Latency: 1500 * time.Millisecond,
				Extra: []KV{{"foo", "bar=baz"}, {"empty", ""}, {"multi", "x\ny"}},
			},
			want: "type=host\nhost_name=h\ncommand_line=c\nnext_check=5.000000\ncheck_options=2\nscheduled_check=1\nlatency=1.500000\nfoo=bar=baz\nmulti=x\\ny\n\n\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.job.Marshal()
			if string(got) != tc.want {
				t.Fatalf("Marshal:\n got %q\nwant %q", got, tc.want)
			}
			back, err := ParseJob(got)
			if err != nil {
				t.Fatalf("ParseJob: %v", err)
			}
			want := tc.job
			var extra []KV
			for _, kv := range want.Extra {
				if kv.Value != "" {
					extra = append(extra, kv)
				}
			}
			want.Extra = extra
			assertJobEqual(t, back, want)
		})
	}
}

func TestParseJob(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want Job
	}{
		{
			name: "legacy C test payload",
			text: "type=service\nresult_queue=results\nhost_name=host1\nservice_description=svc1\nstart_time=1.5\nnext_check=2\ncheck_options=0\nscheduled_check=1\nlatency=0.100000\ntimeout=10\ncommand_line=./t/crit.pl\n\n\n",
			want: Job{
				Type: JobService, ResultQueue: "results", HostName: "host1", ServiceDescription: "svc1",
				StartTime: ts(1, 500000), NextCheck: ts(2, 0), ScheduledCheck: true,
				Latency: 100 * time.Millisecond, Timeout: 10 * time.Second, CommandLine: "./t/crit.pl",
			},
		},
		{
			name: "stops at first empty line",
			text: "type=host\nhost_name=a\ncommand_line=b\n\nhost_name=ignored\n",
			want: Job{Type: JobHost, HostName: "a", CommandLine: "b"},
		},
		{
			name: "stops at NUL",
			text: "type=host\nhost_name=a\ncommand_line=b\n\x00garbage without equals\n",
			want: Job{Type: JobHost, HostName: "a", CommandLine: "b"},
		},
		{
			name: "no trailing newline",
			text: "type=eventhandler\ncommand_line=x",
			want: Job{Type: JobEventHandler, CommandLine: "x"},
		},
		{
			name: "LF padding",
			text: "type=eventhandler\ncommand_line=x\n\n\n\n\n\n",
			want: Job{Type: JobEventHandler, CommandLine: "x"},
		},
		{
			name: "value with = and escapes, not trimmed",
			text: "type=host\nhost_name= a b \ncommand_line=echo 'x=1\\ny' \\\\n \\t\n",
			want: Job{Type: JobHost, HostName: " a b ", CommandLine: "echo 'x=1\ny' \\\n \\t"},
		},
		{
			name: "empty values are absent, last value wins, extras kept",
			text: "type=host\nhost_name=a\nhost_name=b\ncontact=\nx=1\ncommand_line=c\nx=2\ny=\n",
			want: Job{Type: JobHost, HostName: "b", CommandLine: "c", Extra: []KV{{"x", "1"}, {"x", "2"}}},
		},
		{
			name: "key order does not matter",
			text: "command_line=c\nhost_name=h\ntype=host\n",
			want: Job{Type: JobHost, HostName: "h", CommandLine: "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJob([]byte(tc.text))
			if err != nil {
				t.Fatalf("ParseJob: %v", err)
			}
			assertJobEqual(t, got, tc.want)
		})
	}
}

func TestParseJobErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"empty", "", []string{`missing key "type"`}},
		{"leading empty line", "\ntype=host\nhost_name=a\ncommand_line=b\n", []string{`missing key "type"`}},
		{"no type", "host_name=a\ncommand_line=b\n", []string{`missing key "type"`}},
		{"unknown type", "type=perfdata\nhost_name=a\n", []string{"line 1", `"type"`, `unknown job type "perfdata"`}},
		{"CRLF type", "type=host\r\nhost_name=a\r\ncommand_line=b\r\n", []string{"line 1", `unknown job type "host\r"`}},
		{"line without =", "type=host\nhost_name=a\ngarbage\ncommand_line=b\n", []string{"line 3", "no '='"}},
		{"empty key", "type=host\n=a\n", []string{"line 2", "empty key"}},
		{"host without host_name", "type=host\ncommand_line=b\n", []string{`missing key "host_name"`}},
		{"host without command_line", "type=host\nhost_name=a\n", []string{`missing key "command_line"`}},
		{"host with empty command_line", "type=host\nhost_name=a\ncommand_line=\n", []string{`missing key "command_line"`}},
		{"service without description", "type=service\nhost_name=a\ncommand_line=b\n", []string{`missing key "service_description"`}},
		{"eventhandler without command_line", "type=eventhandler\nstart_time=1\n", []string{`missing key "command_line"`}},
		{"notification without command_line", "type=notification\ncontact=c\n", []string{`missing key "command_line"`}},
		{"bad timeout", "type=host\ntimeout=60s\n", []string{"line 2", `"timeout"`}},
		{"negative timeout", "type=host\ntimeout=-1\n", []string{"line 2", `"timeout"`, "negative"}},
		{"huge timeout", "type=host\ntimeout=99999999999\n", []string{"line 2", `"timeout"`}},
		{"bad core_time", "type=host\ncore_time=1e9\n", []string{"line 2", `"core_time"`}},
		{"bad start_time", "type=host\nstart_time=12:00\n", []string{"line 2", `"start_time"`}},
		{"bad next_check", "type=host\nnext_check=.\n", []string{"line 2", `"next_check"`}},
		{"time beyond 9999", "type=host\ncore_time=999999999999999\n", []string{"line 2", `"core_time"`, "out of range"}},
		{"bad check_options", "type=host\ncheck_options=x\n", []string{"line 2", `"check_options"`}},
		{"bad scheduled_check", "type=host\nscheduled_check=yes\n", []string{"line 2", `"scheduled_check"`}},
		{"bad latency", "type=host\nlatency=fast\n", []string{"line 2", `"latency"`}},
		// A result queue gearmand cannot take (or cannot show) would make
		// every submit of the result fail or vanish: the job is refused.
		{"result_queue with a space", "type=host\nresult_queue=my results\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "space"}},
		{"result_queue with a tab", "type=host\nresult_queue=my\tresults\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "whitespace"}},
		{"result_queue with an escaped newline", "type=host\nresult_queue=my\\nresults\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "whitespace"}},
		{"result_queue with a control byte", "type=host\nresult_queue=my\x01results\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "control byte"}},
		{"result_queue with DEL", "type=host\nresult_queue=my\x7fresults\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "control byte"}},
		{"result_queue over 512 bytes", "type=host\nresult_queue=" + strings.Repeat("q", 513) + "\nhost_name=a\ncommand_line=b\n", []string{"line 2", `"result_queue"`, "513 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJob([]byte(tc.text))
			if err == nil {
				t.Fatal("ParseJob succeeded, want error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "parse job: ") {
				t.Errorf("error %q lacks the parse job prefix", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestJobValidate(t *testing.T) {
	if err := specServiceJob().Validate(); err != nil {
		t.Errorf("spec job: %v", err)
	}
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{}, `missing key "type"`},
		{Job{Type: "check"}, `unknown job type "check"`},
		{Job{Type: JobNotification}, `missing key "command_line" for notification job`},
		{Job{Type: JobHost, HostName: "h", CommandLine: "c", ResultQueue: "a\x00b"}, `result_queue: queue name "a\x00b" has a NUL at byte 1`},
		{Job{Type: JobHost, HostName: "h", CommandLine: "c", ResultQueue: "a b"}, `result_queue: queue name "a b" has a space at byte 1`},
	} {
		err := tc.job.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.job, err, tc.want)
		}
	}
}

func TestValidQueueName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue string
		want  string // substring of the error; empty for a valid name
	}{
		{"result queue", "check_results", ""},
		{"status queue", "worker_host.example.com", ""},
		{"colon and utf-8", "hostgroup_dc1:rack_é", ""},
		{"512 bytes", strings.Repeat("q", 512), ""},
		{"empty", "", "empty"},
		{"513 bytes", strings.Repeat("q", 513), "513 bytes"},
		{"space", "my results", "a space at byte 2"},
		{"tab", "a\tb", "whitespace"},
		{"LF", "a\nb", "whitespace"},
		{"CR", "a\rb", "whitespace"},
		{"NUL", "a\x00b", "a NUL"},
		{"control byte", "a\x1bb", "control byte 0x1b"},
		{"DEL", "a\x7f", "control byte 0x7f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidQueueName(tc.queue)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ValidQueueName(%q) = %v, want nil", tc.queue, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ValidQueueName(%q) = %v, want an error containing %q", tc.queue, err, tc.want)
			}
		})
	}
}
