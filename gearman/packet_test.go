package gearman

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAppendPacketHeader(t *testing.T) {
	got := AppendPacket(nil, MagicReq, PktSubmitJobBg, []byte("fn"), []byte("u"), []byte("da\x00ta"))
	want := []byte("\x00REQ\x00\x00\x00\x12\x00\x00\x00\x0afn\x00u\x00da\x00ta")
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendPacket = %q, want %q", got, want)
	}
}

func TestReadPacket(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantType PacketType
		wantArgs []string
		wantErr  error
	}{
		{
			name:     "job assign uniq keeps NULs in the last argument",
			in:       AppendPacket(nil, MagicRes, PktJobAssignUniq, []byte("H:x:1"), []byte("fn"), []byte("u"), []byte("a\x00b\x00")),
			wantType: PktJobAssignUniq,
			wantArgs: []string{"H:x:1", "fn", "u", "a\x00b\x00"},
		},
		{
			name:     "no arguments",
			in:       AppendPacket(nil, MagicRes, PktNoop),
			wantType: PktNoop,
		},
		{
			name:     "error packet",
			in:       AppendPacket(nil, MagicRes, PktError, []byte("QUEUE_ERROR"), []byte("Job queue is full")),
			wantType: PktError,
			wantArgs: []string{"QUEUE_ERROR", "Job queue is full"},
		},
		{
			name:     "fewer separators than arguments",
			in:       AppendPacket(nil, MagicRes, PktWorkComplete, []byte("H:x:1")),
			wantType: PktWorkComplete,
			wantArgs: []string{"H:x:1"},
		},
		{
			name:     "unknown type is one raw argument",
			in:       AppendPacket(nil, MagicReq, 99, []byte("a\x00b")),
			wantType: 99,
			wantArgs: []string{"a\x00b"},
		},
		{
			name:    "bad magic",
			in:      []byte("\x00XYZ\x00\x00\x00\x06\x00\x00\x00\x00"),
			wantErr: ErrBadMagic,
		},
		{
			name:    "text command on the binary reader",
			in:      []byte("status\n....."),
			wantErr: ErrBadMagic,
		},
		{
			name:    "body over the limit",
			in:      []byte("\x00RES\x00\x00\x00\x0d\x00\x01\x00\x01"),
			wantErr: ErrPacketTooLarge,
		},
		{
			name:    "truncated body",
			in:      []byte("\x00RES\x00\x00\x00\x08\x00\x00\x00\x05H:x"),
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "truncated header",
			in:      []byte("\x00RES\x00"),
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "empty stream",
			in:      nil,
			wantErr: io.EOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewPacketReader(bytes.NewReader(tt.in), 64<<10, 0)
			p, err := r.ReadPacket()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != tt.wantType {
				t.Errorf("type = %s, want %s", p.Type, tt.wantType)
			}
			var got []string
			for _, a := range p.Args {
				got = append(got, string(a))
			}
			if strings.Join(got, "|") != strings.Join(tt.wantArgs, "|") || len(got) != len(tt.wantArgs) {
				t.Errorf("args = %q, want %q", got, tt.wantArgs)
			}
		})
	}
}

func TestPacketWriterBatchesUntilFlush(t *testing.T) {
	var buf bytes.Buffer
	w := NewPacketWriter(&buf, 0)
	for range 100 {
		if err := w.writeStrings(PktSubmitJobBg, []byte("payload"), true, "fn", "uniq"); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes reached the stream before Flush", buf.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewPacketReader(&buf, 0, 0)
	for i := range 100 {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Type != PktSubmitJobBg || string(p.Arg(0)) != "fn" || string(p.Arg(1)) != "uniq" || string(p.Arg(2)) != "payload" {
			t.Fatalf("packet %d = %s %q", i, p.Type, p.Args)
		}
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want EOF", err)
	}
}

func TestWriteStringsMatchesAppendPacket(t *testing.T) {
	cases := []struct {
		t       PacketType
		data    []byte
		hasData bool
		strs    []string
	}{
		{PktGrabJobUniq, nil, false, nil},
		{PktCanDo, nil, false, []string{"fn"}},
		{PktWorkStatus, nil, false, []string{"H:1", "3", "4"}},
		{PktWorkComplete, []byte("res\x00ult"), true, []string{"H:1"}},
		{PktEchoReq, []byte("ping"), true, nil},
		{PktSubmitJob, []byte{}, true, []string{"fn", ""}},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		w := NewPacketWriter(&buf, 0)
		if err := w.writeStrings(c.t, c.data, c.hasData, c.strs...); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		var args [][]byte
		for _, s := range c.strs {
			args = append(args, []byte(s))
		}
		if c.hasData {
			args = append(args, c.data)
		}
		if want := AppendPacket(nil, MagicReq, c.t, args...); !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: writeStrings = %q, AppendPacket = %q", c.t, buf.Bytes(), want)
		}
	}
}

func TestPacketTypeNames(t *testing.T) {
	for typ := PktCanDo; typ <= PktStatusResUnique; typ++ {
		if typ == 5 {
			continue
		}
		if strings.HasPrefix(typ.String(), "PacketType(") {
			t.Errorf("type %d has no name", typ)
		}
	}
	if got := PacketType(77).String(); got != "PacketType(77)" {
		t.Errorf("unknown type = %q", got)
	}
}

// FuzzReadPacket decodes arbitrary streams: the reader must never panic,
// must respect its size limit, and every packet it returns must re-encode
// to exactly the bytes it consumed.
func FuzzReadPacket(f *testing.F) {
	f.Add(AppendPacket(nil, MagicRes, PktJobCreated, []byte("H:host:1")))
	f.Add(AppendPacket(nil, MagicRes, PktJobAssignUniq, []byte("H:host:2"), []byte("fn"), []byte("u"), []byte("x\x00y")))
	f.Add(AppendPacket(AppendPacket(nil, MagicRes, PktNoJob), MagicRes, PktNoop))
	f.Add([]byte("\x00RES\x00\x00\x00\x13\xff\xff\xff\xff"))
	f.Add([]byte("\x00REQ\x00\x00\x00\x01\x00\x00\x00\x02f"))
	f.Add([]byte("status\n"))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewPacketReader(bytes.NewReader(in), limit, 16)
		off := 0
		for {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			enc := AppendPacket(nil, p.Magic, p.Type, p.Args...)
			if len(enc)-HeaderSize > limit {
				t.Fatalf("body of %d bytes passed a limit of %d", len(enc)-HeaderSize, limit)
			}
			if off+len(enc) > len(in) || !bytes.Equal(enc, in[off:off+len(enc)]) {
				t.Fatalf("packet %s %q re-encodes to %q, read from %q", p.Type, p.Args, enc, in[off:])
			}
			off += len(enc)
		}
	})
}
