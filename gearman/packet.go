package gearman

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// HeaderSize is the size of a binary packet header: magic, type and body
// length, four bytes each.
const HeaderSize = 12

// DefaultMaxPacketSize bounds the body of a packet read from the network.
// gearmand itself has no such limit; 64 MiB is far above any job Mod-Gearman
// sends (check output is capped well below a megabyte) and keeps a corrupt
// length field from allocating gigabytes.
const DefaultMaxPacketSize = 64 << 20

// Magic tells requests (sent to the server) from responses (sent by it).
type Magic uint32

// The two magic codes of the binary protocol.
const (
	MagicReq Magic = 0x00524551 // "\0REQ"
	MagicRes Magic = 0x00524553 // "\0RES"
)

// String returns "REQ" or "RES".
func (m Magic) String() string {
	switch m {
	case MagicReq:
		return "REQ"
	case MagicRes:
		return "RES"
	}
	return fmt.Sprintf("Magic(%#08x)", uint32(m))
}

// PacketType is the command number of a binary packet.
type PacketType uint32

// Packet types of the Gearman binary protocol (PROTOCOL file of gearmand
// 1.1.20). Direction and arguments are in the comments; W is a worker, C a
// client, S the server.
const (
	PktCanDo             PacketType = 1  // W→S: function
	PktCantDo            PacketType = 2  // W→S: function
	PktResetAbilities    PacketType = 3  // W→S
	PktPreSleep          PacketType = 4  // W→S
	PktNoop              PacketType = 6  // S→W
	PktSubmitJob         PacketType = 7  // C→S: function, unique, data
	PktJobCreated        PacketType = 8  // S→C: handle
	PktGrabJob           PacketType = 9  // W→S
	PktNoJob             PacketType = 10 // S→W
	PktJobAssign         PacketType = 11 // S→W: handle, function, data
	PktWorkStatus        PacketType = 12 // W→S→C: handle, numerator, denominator
	PktWorkComplete      PacketType = 13 // W→S→C: handle, data
	PktWorkFail          PacketType = 14 // W→S→C: handle
	PktGetStatus         PacketType = 15 // C→S: handle
	PktEchoReq           PacketType = 16 // any: data
	PktEchoRes           PacketType = 17 // any: data
	PktSubmitJobBg       PacketType = 18 // C→S: function, unique, data
	PktError             PacketType = 19 // S→any: code, text
	PktStatusRes         PacketType = 20 // S→C: handle, known, running, numerator, denominator
	PktSubmitJobHigh     PacketType = 21 // C→S: function, unique, data
	PktSetClientID       PacketType = 22 // W→S: id
	PktCanDoTimeout      PacketType = 23 // W→S: function, seconds (never sent by this package)
	PktAllYours          PacketType = 24 // W→S (not implemented by gearmand)
	PktWorkException     PacketType = 25 // W→S→C: handle, data
	PktOptionReq         PacketType = 26 // C→S: option
	PktOptionRes         PacketType = 27 // S→C: option
	PktWorkData          PacketType = 28 // W→S→C: handle, data
	PktWorkWarning       PacketType = 29 // W→S→C: handle, data
	PktGrabJobUniq       PacketType = 30 // W→S
	PktJobAssignUniq     PacketType = 31 // S→W: handle, function, unique, data
	PktSubmitJobHighBg   PacketType = 32 // C→S: function, unique, data
	PktSubmitJobLow      PacketType = 33 // C→S: function, unique, data
	PktSubmitJobLowBg    PacketType = 34 // C→S: function, unique, data
	PktSubmitJobSched    PacketType = 35 // C→S: function, unique, minute, hour, mday, month, wday, data
	PktSubmitJobEpoch    PacketType = 36 // C→S: function, unique, epoch, data
	PktSubmitReduceJob   PacketType = 37 // C→S: function, unique, reducer, aggregator, data
	PktSubmitReduceJobBg PacketType = 38 // C→S: function, unique, reducer, aggregator, data
	PktGrabJobAll        PacketType = 39 // W→S
	PktJobAssignAll      PacketType = 40 // S→W: handle, function, unique, reducer, data
	PktGetStatusUnique   PacketType = 41 // C→S: unique
	PktStatusResUnique   PacketType = 42 // S→C: unique, known, running, numerator, denominator, client count
)

var packetNames = [...]string{
	PktCanDo: "CAN_DO", PktCantDo: "CANT_DO", PktResetAbilities: "RESET_ABILITIES",
	PktPreSleep: "PRE_SLEEP", PktNoop: "NOOP", PktSubmitJob: "SUBMIT_JOB",
	PktJobCreated: "JOB_CREATED", PktGrabJob: "GRAB_JOB", PktNoJob: "NO_JOB",
	PktJobAssign: "JOB_ASSIGN", PktWorkStatus: "WORK_STATUS", PktWorkComplete: "WORK_COMPLETE",
	PktWorkFail: "WORK_FAIL", PktGetStatus: "GET_STATUS", PktEchoReq: "ECHO_REQ",
	PktEchoRes: "ECHO_RES", PktSubmitJobBg: "SUBMIT_JOB_BG", PktError: "ERROR",
	PktStatusRes: "STATUS_RES", PktSubmitJobHigh: "SUBMIT_JOB_HIGH", PktSetClientID: "SET_CLIENT_ID",
	PktCanDoTimeout: "CAN_DO_TIMEOUT", PktAllYours: "ALL_YOURS", PktWorkException: "WORK_EXCEPTION",
	PktOptionReq: "OPTION_REQ", PktOptionRes: "OPTION_RES", PktWorkData: "WORK_DATA",
	PktWorkWarning: "WORK_WARNING", PktGrabJobUniq: "GRAB_JOB_UNIQ", PktJobAssignUniq: "JOB_ASSIGN_UNIQ",
	PktSubmitJobHighBg: "SUBMIT_JOB_HIGH_BG", PktSubmitJobLow: "SUBMIT_JOB_LOW",
	PktSubmitJobLowBg: "SUBMIT_JOB_LOW_BG", PktSubmitJobSched: "SUBMIT_JOB_SCHED",
	PktSubmitJobEpoch: "SUBMIT_JOB_EPOCH", PktSubmitReduceJob: "SUBMIT_REDUCE_JOB",
	PktSubmitReduceJobBg: "SUBMIT_REDUCE_JOB_BACKGROUND", PktGrabJobAll: "GRAB_JOB_ALL",
	PktJobAssignAll: "JOB_ASSIGN_ALL", PktGetStatusUnique: "GET_STATUS_UNIQUE",
	PktStatusResUnique: "STATUS_RES_UNIQUE",
}

// String returns the protocol name, e.g. "SUBMIT_JOB_BG".
func (t PacketType) String() string {
	if int(t) < len(packetNames) && packetNames[t] != "" {
		return packetNames[t]
	}
	return "PacketType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// packetArgs is the number of NUL-separated arguments of each packet type.
// The last argument runs to the end of the body and may contain NULs.
var packetArgs = [...]int8{
	PktCanDo: 1, PktCantDo: 1, PktResetAbilities: 0, PktPreSleep: 0, PktNoop: 0,
	PktSubmitJob: 3, PktJobCreated: 1, PktGrabJob: 0, PktNoJob: 0, PktJobAssign: 3,
	PktWorkStatus: 3, PktWorkComplete: 2, PktWorkFail: 1, PktGetStatus: 1, PktEchoReq: 1,
	PktEchoRes: 1, PktSubmitJobBg: 3, PktError: 2, PktStatusRes: 5, PktSubmitJobHigh: 3,
	PktSetClientID: 1, PktCanDoTimeout: 2, PktAllYours: 0, PktWorkException: 2,
	PktOptionReq: 1, PktOptionRes: 1, PktWorkData: 2, PktWorkWarning: 2, PktGrabJobUniq: 0,
	PktJobAssignUniq: 4, PktSubmitJobHighBg: 3, PktSubmitJobLow: 3, PktSubmitJobLowBg: 3,
	PktSubmitJobSched: 8, PktSubmitJobEpoch: 4, PktSubmitReduceJob: 5, PktSubmitReduceJobBg: 5,
	PktGrabJobAll: 0, PktJobAssignAll: 5, PktGetStatusUnique: 1, PktStatusResUnique: 6,
}

// NumArgs returns how many arguments a packet of type t carries. Unknown
// types count as one raw argument (the whole body).
func (t PacketType) NumArgs() int {
	if t == 0 || int(t) >= len(packetArgs) || t == 5 {
		return 1
	}
	return int(packetArgs[t])
}

// Errors of the packet layer.
var (
	// ErrBadMagic means a header did not start with "\0REQ" or "\0RES".
	ErrBadMagic = errors.New("gearman: bad packet magic")
	// ErrPacketTooLarge means a body length exceeded the reader's limit.
	ErrPacketTooLarge = errors.New("gearman: packet too large")
)

// Packet is one decoded binary packet. Args alias the reader's buffer when
// returned by PacketReader.ReadPacket and are valid until the next call.
type Packet struct {
	Magic Magic
	Type  PacketType
	Args  [][]byte
}

// Arg returns argument i, or nil when the packet has fewer arguments.
func (p *Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}

// bodyLen returns the encoded body length of args.
func bodyLen(args [][]byte) int {
	n := 0
	for i, a := range args {
		if i > 0 {
			n++
		}
		n += len(a)
	}
	return n
}

// AppendPacket appends the encoding of one packet to dst. Arguments other
// than the last must not contain NUL; AppendPacket does not check.
func AppendPacket(dst []byte, magic Magic, t PacketType, args ...[]byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(magic))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t))
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen(args)))
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return dst
}

// PacketReader decodes binary packets from a buffered stream. It is not safe
// for concurrent use.
type PacketReader struct {
	r       *bufio.Reader
	max     int
	hdr     [HeaderSize]byte
	body    []byte
	args    [8][]byte
	scratch Packet
}

// NewPacketReader returns a reader that rejects bodies larger than maxBody
// bytes (DefaultMaxPacketSize when maxBody <= 0). bufSize sizes the read
// buffer (64 KiB when <= 0).
func NewPacketReader(r io.Reader, maxBody, bufSize int) *PacketReader {
	if maxBody <= 0 {
		maxBody = DefaultMaxPacketSize
	}
	if bufSize <= 0 {
		bufSize = 64 << 10
	}
	return &PacketReader{r: bufio.NewReaderSize(r, bufSize), max: maxBody}
}

// bodyKeep is the largest body buffer kept between packets; a larger one
// (e.g. from a 1 MiB job) is dropped after use so an idle connection does
// not pin it.
const bodyKeep = 256 << 10

// ReadPacket reads the next packet. The returned packet and its arguments
// alias internal buffers and are valid only until the next call. A stream
// that ends cleanly between packets yields io.EOF; one that ends inside a
// packet yields io.ErrUnexpectedEOF.
func (r *PacketReader) ReadPacket() (*Packet, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return nil, err
	}
	magic := Magic(binary.BigEndian.Uint32(r.hdr[0:4]))
	if magic != MagicReq && magic != MagicRes {
		return nil, fmt.Errorf("%w: % x", ErrBadMagic, r.hdr[0:4])
	}
	t := PacketType(binary.BigEndian.Uint32(r.hdr[4:8]))
	n := binary.BigEndian.Uint32(r.hdr[8:12])
	if uint64(n) > uint64(r.max) {
		return nil, fmt.Errorf("%w: %s body of %d bytes exceeds %d", ErrPacketTooLarge, t, n, r.max)
	}
	if cap(r.body) > bodyKeep && int(n) <= bodyKeep {
		r.body = nil
	}
	if cap(r.body) < int(n) {
		r.body = make([]byte, n)
	}
	body := r.body[:n]
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s body: %w", t, err)
	}
	r.scratch = Packet{Magic: magic, Type: t, Args: splitArgs(r.args[:0], body, t.NumArgs())}
	return &r.scratch, nil
}

// splitArgs splits body into at most n arguments. A body with fewer
// separators yields fewer arguments; callers check with Packet.Arg. A
// non-empty body of a type without arguments is kept as one argument, so
// that no byte read is lost.
func splitArgs(dst [][]byte, body []byte, n int) [][]byte {
	if len(body) == 0 && n <= 1 {
		return dst
	}
	n = max(n, 1)
	for len(dst) < n-1 {
		i := indexNUL(body)
		if i < 0 {
			break
		}
		dst = append(dst, body[:i:i])
		body = body[i+1:]
	}
	return append(dst, body)
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// PacketWriter encodes packets into a buffered stream. Nothing reaches the
// network before Flush (or before the buffer fills), so a caller that writes
// many packets and flushes once sends them in few segments. It is not safe
// for concurrent use.
type PacketWriter struct {
	w   *bufio.Writer
	hdr [HeaderSize]byte
}

// NewPacketWriter returns a writer with a buffer of bufSize bytes (64 KiB
// when <= 0).
func NewPacketWriter(w io.Writer, bufSize int) *PacketWriter {
	if bufSize <= 0 {
		bufSize = 64 << 10
	}
	return &PacketWriter{w: bufio.NewWriterSize(w, bufSize)}
}

func (w *PacketWriter) header(magic Magic, t PacketType, n int) error {
	if uint64(n) > 0xffffffff {
		return fmt.Errorf("%w: %s body of %d bytes", ErrPacketTooLarge, t, n)
	}
	binary.BigEndian.PutUint32(w.hdr[0:4], uint32(magic))
	binary.BigEndian.PutUint32(w.hdr[4:8], uint32(t))
	binary.BigEndian.PutUint32(w.hdr[8:12], uint32(n))
	_, err := w.w.Write(w.hdr[:])
	return err
}

// WritePacket buffers one packet.
func (w *PacketWriter) WritePacket(magic Magic, t PacketType, args ...[]byte) error {
	if err := w.header(magic, t, bodyLen(args)); err != nil {
		return err
	}
	for i, a := range args {
		if i > 0 {
			if err := w.w.WriteByte(0); err != nil {
				return err
			}
		}
		if _, err := w.w.Write(a); err != nil {
			return err
		}
	}
	return nil
}

// writeStrings buffers a request whose arguments are strings followed by an
// optional raw last argument, without converting them to []byte.
func (w *PacketWriter) writeStrings(t PacketType, data []byte, hasData bool, strs ...string) error {
	n := len(data)
	for _, s := range strs {
		n += len(s)
	}
	if seps := len(strs) - 1; hasData {
		n += len(strs)
	} else if seps > 0 {
		n += seps
	}
	if err := w.header(MagicReq, t, n); err != nil {
		return err
	}
	for i, s := range strs {
		if i > 0 {
			w.w.WriteByte(0)
		}
		w.w.WriteString(s)
	}
	if hasData {
		if len(strs) > 0 {
			w.w.WriteByte(0)
		}
		w.w.Write(data)
	}
	// bufio.Writer keeps the first error and returns it from every later
	// call, so checking once here is enough.
	_, err := w.w.Write(nil)
	return err
}

// Flush writes buffered packets to the underlying writer.
func (w *PacketWriter) Flush() error { return w.w.Flush() }

// Buffered returns the number of bytes waiting for Flush.
func (w *PacketWriter) Buffered() int { return w.w.Buffered() }
