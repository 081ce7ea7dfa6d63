package sender

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line, delim string
		want              Result
		err               string
	}{
		{"service", "web1\thttp\t1\tHTTP WARNING", "", Result{Host: "web1", Service: "http", ReturnCode: 1, Output: "HTTP WARNING"}, ""},
		{"host", "web1\t0\tPING OK", "", Result{Host: "web1", Output: "PING OK"}, ""},
		{"output keeps delimiters", "web1\thttp\t2\ta\tb\tc", "", Result{Host: "web1", Service: "http", ReturnCode: 2, Output: "a\tb\tc"}, ""},
		{"host output keeps delimiters", "web1\t3\tx\ty", "", Result{Host: "web1", ReturnCode: 3, Output: "x\ty"}, ""},
		{"runs of delimiters collapse", "\tweb1\t\thttp\t\t0\t\tOK", "", Result{Host: "web1", Service: "http", Output: "OK"}, ""},
		{"delimiter set", "web1;http|0;OK|fine", ";|", Result{Host: "web1", Service: "http", Output: "OK|fine"}, ""},
		{"crlf", "web1\t0\tOK\r", "", Result{Host: "web1", Output: "OK"}, ""},
		{"service empty output", "web1\thttp\t2", "", Result{Host: "web1", Service: "http", ReturnCode: 2}, ""},
		{"host empty output", "web1\t1", "", Result{Host: "web1", ReturnCode: 1}, ""},
		{"numeric service wins with 4 fields", "web1\t0\t2\ttext", "", Result{Host: "web1", Service: "0", ReturnCode: 2, Output: "text"}, ""},
		{"host with numeric output", "web1\t0\t2", "", Result{Host: "web1", Output: "2"}, ""},
		{"rc out of range", "web1\thttp\t4\tout", "", Result{}, "return code 4 is not 0..3"},
		{"no rc", "web1\thttp\tout", "", Result{}, "is not a return code"},
		{"only host", "web1", "", Result{}, "no return code"},
		{"empty", "", "", Result{}, "no host name"},
		{"plus sign is not an rc", "web1\t+1\tout", "", Result{}, "is not a return code"},
		{"latin-1 bytes kept", "h\xf4te\tcaf\xe9\t1\tr\xe9ponse \xff|t=1s", "", Result{Host: "h\xf4te", Service: "caf\xe9", ReturnCode: 1, Output: "r\xe9ponse \xff|t=1s"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine(tt.line, tt.delim)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseLine(%q) = %+v, %v; want error containing %q", tt.line, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseLine(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
			}
		})
	}
}

func TestParseMultiSample(t *testing.T) {
	data, err := os.ReadFile("testdata/multi.xml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	got, err := ParseMulti(data, "db1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Host: "db1", Service: "disk", ReturnCode: 2,
			Output: "DISK CRITICAL - free space: / 1024 MB (3% inode=90%) & /var <5%> [warning: stale NFS 'handle']" +
				"|disk::check_disk::/=30000MB;28000;29000;0;31000 /var=900MB;800;850;0;1000",
			Start: now.Add(-250 * time.Millisecond), Finish: now, Source: SourceSendMulti},
		{Host: "db1", Service: "load", ReturnCode: 0,
			Output: "OK - load average: 0.10, 0.05, 0.01 | pipe in text|'load::check_load::load 1'=0.100;5;10;0; 'load 5'=0.050;4;8;0;",
			Start:  now.Add(-10 * time.Millisecond), Finish: now, Source: SourceSendMulti},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("child %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestParseMultiErrors(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name, in, err string
	}{
		{"no children", "<PARENT></PARENT>", "no check_multi child"},
		{"only parent", "<CHILD><no>0</no><name>x</name></CHILD>", "no check_multi child"},
		{"unclosed", "<CHILD><no>1</no><name>a</name><rc>0</rc>", "no </CHILD>"},
		{"unclosed long", "<CHILD><no>1</no>" + strings.Repeat("x", MaxMultiChild+10) + "</CHILD>", "no </CHILD>"},
		{"bad rc", "<CHILD><no>1</no><name>a</name><rc>7</rc></CHILD>", "not a return code"},
		{"no rc", "<CHILD><no>1</no><name>a</name></CHILD>", "no <rc>"},
		{"no name", "<CHILD><no>1</no><rc>0</rc></CHILD>", "empty <name>"},
		{"bad no", "<CHILD><no>x</no></CHILD>", "not a number"},
		{"bad runtime", "<CHILD><no>1</no><name>a</name><rc>0</rc><runtime>abc</runtime></CHILD>", "runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMulti([]byte(tt.in), "h", now)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ParseMulti = %+v, %v; want error containing %q", got, err, tt.err)
			}
		})
	}
}

func TestDecodeEntities(t *testing.T) {
	for in, want := range map[string]string{
		"a &gt; b &lt; c &amp; d":   "a > b < c & d",
		"&#039;&#124;&#x41;&quot;":  `'|A"`,
		"AT&T & co; &unknown; &":    "AT&T & co; &unknown; &",
		"&#0; &#xD800; &#99999999;": "&#0; &#xD800; &#99999999;",
	} {
		if got := decodeEntities(in); got != want {
			t.Errorf("decodeEntities(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProtoSplitRoundTrip(t *testing.T) {
	for _, out := range []string{
		"OK", "OK|a=1", "OK|a=1\nlong\nmore|b=2", "first\nsecond", "trailing pipe|", "\nstarts with newline",
		"", "a|b|c", "x\n", "|only perf",
	} {
		p := Result{Host: "h", Output: out}.Proto()
		if got := joinOutput(string(p.GetOutput()), string(p.GetPerfData()), string(p.GetLongOutput())); got != out {
			t.Errorf("output %q: split %q/%q/%q joins to %q", out, string(p.GetOutput()), string(p.GetPerfData()), string(p.GetLongOutput()), got)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("web1\thttp\t0\tOK", "\t")
	f.Add("web1\t2\tCRIT", "\t")
	f.Add("a;;b;1;x;y", ";")
	f.Fuzz(func(t *testing.T, line, delim string) {
		r, err := ParseLine(line, delim)
		if err != nil {
			return
		}
		if r.Host == "" || r.ReturnCode < 0 || r.ReturnCode > 3 {
			t.Fatalf("accepted bad result %+v from %q", r, line)
		}
		if delim == "" {
			delim = "\t"
		}
		if strings.ContainsAny(r.Host, delim) || strings.ContainsAny(r.Service, delim) {
			t.Fatalf("field contains a delimiter: %+v", r)
		}
	})
}

func FuzzParseMulti(f *testing.F) {
	if data, err := os.ReadFile("testdata/multi.xml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("<CHILD><no>1</no><name>a</name><rc>0</rc><output>x &amp; y</output></CHILD>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseMulti(data, "h", time.Unix(1e9, 0))
		if err != nil {
			return
		}
		if len(rs) == 0 {
			t.Fatal("no results and no error")
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("invalid result %+v: %v", r, err)
			}
		}
	})
}
