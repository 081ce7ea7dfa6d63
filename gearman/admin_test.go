package gearman

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []FunctionStatus
		wantErr bool
	}{
		{
			name: "gearmand 1.1.20 reply, sorted by name",
			in:   "service\t5\t1\t2\nhost\t0\t0\t2\n.\n",
			want: []FunctionStatus{{"host", 0, 0, 2}, {"service", 5, 1, 2}},
		},
		{
			name: "CRLF endings and no terminator",
			in:   "a\t1\t0\t0\r\nb\t2\t2\t1\r\n",
			want: []FunctionStatus{{"a", 1, 0, 0}, {"b", 2, 2, 1}},
		},
		{
			name: "space separated, name with a space",
			in:   "my queue 3 1 1\n.\n",
			want: []FunctionStatus{{"my queue", 3, 1, 1}},
		},
		{name: "empty", in: ".\n", want: []FunctionStatus{}},
		{name: "lines after the terminator are ignored", in: "a\t1\t0\t0\n.\nOK 1.1.20\n", want: []FunctionStatus{{"a", 1, 0, 0}}},
		{name: "too few columns", in: "a\t1\t0\n", wantErr: true},
		{name: "negative count", in: "a\t-1\t0\t0\n", wantErr: true},
		{name: "not a number", in: "a\tx\t0\t0\n", wantErr: true},
		{name: "no name", in: "\t1\t0\t0\n", wantErr: true},
		{name: "server error", in: "ERR UNKNOWN_COMMAND Unknown+server+command\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatusServerErrorIsTyped(t *testing.T) {
	_, err := ParseStatus([]byte("ERR UNKNOWN_COMMAND Unknown+server+commandstatus\r\n"))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodeUnknownCommand || se.Text != "Unknown+server+commandstatus" {
		t.Fatalf("err = %#v", err)
	}
}

func TestParsePriorityStatus(t *testing.T) {
	got, err := ParsePriorityStatus([]byte("foo\t0\t2\t0\t1\nbar\t1\t0\t3\t0\n.\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []PriorityStatus{{"bar", 1, 0, 3, 0}, {"foo", 0, 2, 0, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := ParsePriorityStatus([]byte("foo\t0\t2\t0\n")); err == nil {
		t.Fatal("a line with three numbers parsed as prioritystatus")
	}
}

func TestParseWorkers(t *testing.T) {
	// gearmand lists a connection it is closing with fd -1.
	in := "38 127.0.0.1 - : foo bar\n39 127.0.0.1 - :\n40 ::1 my-worker : check_results\r\n-1 127.0.0.1 - :\n.\n"
	got, err := ParseWorkers([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []WorkerInfo{
		{FD: 38, IP: "127.0.0.1", ClientID: "-", Functions: []string{"foo", "bar"}},
		{FD: 39, IP: "127.0.0.1", ClientID: "-"},
		{FD: 40, IP: "::1", ClientID: "my-worker", Functions: []string{"check_results"}},
		{FD: -1, IP: "127.0.0.1", ClientID: "-"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"38 127.0.0.1 -\n", "x 127.0.0.1 - :\n", "38 :\n", "-2 127.0.0.1 - :\n"} {
		if _, err := ParseWorkers([]byte(bad)); err == nil {
			t.Errorf("ParseWorkers(%q) succeeded", bad)
		}
	}
}

func TestReadAdminReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		multi   bool
		want    string
		wantErr error
	}{
		{name: "one line", in: "OK 1.1.20+ds\n", want: "OK 1.1.20+ds"},
		{name: "one line CRLF", in: "OK\r\n", want: "OK"},
		{name: "multi", in: "a\t1\t0\t0\r\nb\t2\t0\t0\n.\nOK 1\n", multi: true, want: "a\t1\t0\t0\nb\t2\t0\t0\n"},
		{name: "multi empty", in: ".\n", multi: true, want: ""},
		{name: "error line", in: "ERR UNKNOWN_JOB\r\n", multi: true, wantErr: &ServerError{}},
		{name: "truncated", in: "a\t1\t0\t0\n", multi: true, wantErr: io.ErrUnexpectedEOF},
		{name: "too large", in: strings.Repeat("x", 5000) + "\n.\n", multi: true, wantErr: ErrResponseTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per read: the reply must be assembled across reads.
			r := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tt.in)), 16)
			got, err := readAdminReply(r, tt.multi, 4096)
			if tt.wantErr != nil {
				var se *ServerError
				if _, ok := tt.wantErr.(*ServerError); ok && errors.As(err, &se) {
					return
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// FuzzParseAdmin feeds arbitrary replies to every admin parser: none may
// panic, and whatever parses must hold sane values.
func FuzzParseAdmin(f *testing.F) {
	f.Add([]byte("service\t5\t1\t2\nhost\t0\t0\t2\n.\n"))
	f.Add([]byte("foo\t0\t2\t0\t1\n.\n"))
	f.Add([]byte("38 127.0.0.1 - : foo bar\n39 127.0.0.1 - :\n.\n"))
	f.Add([]byte("ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n"))
	f.Add([]byte("my queue 3 1 1\r\n.\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if st, err := ParseStatus(in); err == nil {
			for _, s := range st {
				if s.Name == "" || s.Total < 0 || s.Running < 0 || s.Workers < 0 || strings.ContainsAny(s.Name, "\n") {
					t.Fatalf("bad status %+v from %q", s, in)
				}
			}
		}
		if ps, err := ParsePriorityStatus(in); err == nil {
			for _, p := range ps {
				if p.Name == "" || p.High < 0 || p.Normal < 0 || p.Low < 0 || p.Workers < 0 {
					t.Fatalf("bad prioritystatus %+v from %q", p, in)
				}
			}
		}
		if ws, err := ParseWorkers(in); err == nil {
			for _, w := range ws {
				if w.FD < 0 || w.IP == "" || w.ClientID == "" {
					t.Fatalf("bad worker %+v from %q", w, in)
				}
			}
		}
		r := bufio.NewReaderSize(strings.NewReader(string(in)), 16)
		for range 4 {
			if _, err := readAdminReply(r, true, 1<<12); err != nil {
				break
			}
		}
	})
}
