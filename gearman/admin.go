package gearman

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxAdminResponse bounds one multi-line admin reply. "status" on a
// server with 10,000 functions is well under 1 MiB.
const DefaultMaxAdminResponse = 16 << 20

// ErrResponseTooLarge means an admin reply exceeded MaxResponse.
var ErrResponseTooLarge = errors.New("gearman: admin response too large")

// AdminOptions configures an Admin. The zero value is usable.
type AdminOptions struct {
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration
	// Dialer replaces the TCP dialer.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// MaxResponse bounds one reply. Default DefaultMaxAdminResponse.
	MaxResponse int
}

// Admin speaks gearmand's text admin protocol over one connection, dialed
// on first use and redialed after a failed command. Commands are
// serialized; Admin is safe for concurrent use.
type Admin struct {
	addr string
	opts AdminOptions
	dial dialFunc

	mu     sync.Mutex
	nc     net.Conn
	r      *bufio.Reader
	closed bool
}

// NewAdmin returns an admin client for addr ("host:port"). It does not dial
// until the first command.
func NewAdmin(addr string, opts AdminOptions) *Admin {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = DefaultMaxAdminResponse
	}
	a := &Admin{addr: addr, opts: opts, dial: opts.Dialer}
	if a.dial == nil {
		a.dial = defaultDialer(opts.DialTimeout)
	}
	return a
}

// Close closes the connection. Later commands return ErrClosed.
func (a *Admin) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	return a.dropLocked()
}

func (a *Admin) dropLocked() error {
	if a.nc == nil {
		return nil
	}
	err := a.nc.Close()
	a.nc, a.r = nil, nil
	return err
}

// FunctionStatus is one line of "status".
type FunctionStatus struct {
	Name    string
	Total   int // queued plus running jobs
	Running int
	Workers int // workers that registered the function
}

// Waiting returns the jobs queued and not running.
func (s FunctionStatus) Waiting() int { return s.Total - s.Running }

// PriorityStatus is one line of "prioritystatus": queued jobs per priority.
type PriorityStatus struct {
	Name                       string
	High, Normal, Low, Workers int
}

// WorkerInfo is one line of "workers". Admin connections appear too, with
// no functions.
type WorkerInfo struct {
	FD        int
	IP        string
	ClientID  string // "-" when not set
	Functions []string
}

// Status runs "status".
func (a *Admin) Status(ctx context.Context) ([]FunctionStatus, error) {
	b, err := a.command(ctx, "status", true)
	if err != nil {
		return nil, err
	}
	return ParseStatus(b)
}

// PriorityStatus runs "prioritystatus".
func (a *Admin) PriorityStatus(ctx context.Context) ([]PriorityStatus, error) {
	b, err := a.command(ctx, "prioritystatus", true)
	if err != nil {
		return nil, err
	}
	return ParsePriorityStatus(b)
}

// Workers runs "workers".
func (a *Admin) Workers(ctx context.Context) ([]WorkerInfo, error) {
	b, err := a.command(ctx, "workers", true)
	if err != nil {
		return nil, err
	}
	return ParseWorkers(b)
}

// Version runs "version" and returns the version without "OK ".
func (a *Admin) Version(ctx context.Context) (string, error) {
	b, err := a.command(ctx, "version", false)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimPrefix(b, []byte("OK "))), nil
}

// GetPID runs "getpid".
func (a *Admin) GetPID(ctx context.Context) (int, error) {
	b, err := a.command(ctx, "getpid", false)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimPrefix(b, []byte("OK "))))
	if err != nil {
		return 0, fmt.Errorf("parse getpid reply %q: %w", b, err)
	}
	return pid, nil
}

// MaxQueue runs "maxqueue fn n": at most n queued jobs of each priority. It
// has no effect until the function exists on the server (a worker
// registered it or a job was submitted).
func (a *Admin) MaxQueue(ctx context.Context, fn string, n int) error {
	if err := ValidFunctionName(fn); err != nil {
		return err
	}
	_, err := a.command(ctx, "maxqueue "+fn+" "+strconv.Itoa(n), false)
	return err
}

// command sends one line and reads a one-line reply, or with multi the
// lines up to the terminating ".". An "ERR" reply becomes *ServerError.
func (a *Admin) command(ctx context.Context, cmd string, multi bool) (out []byte, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	defer func() {
		var se *ServerError
		if err != nil && !errors.As(err, &se) {
			// The stream may hold half a reply; start afresh next time.
			a.dropLocked()
			if ctx.Err() != nil {
				err = ctx.Err()
			} else {
				err = fmt.Errorf("admin %q on %s: %w", cmd, a.addr, err)
			}
		}
	}()
	if a.nc == nil {
		dctx, cancel := context.WithTimeout(ctx, a.opts.DialTimeout)
		nc, err := a.dial(dctx, a.addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		a.nc, a.r = nc, bufio.NewReaderSize(nc, 32<<10)
	}
	nc := a.nc
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && a.nc == nc {
			// The cancellation may set a past deadline at any moment now,
			// even after this command succeeded: do not reuse nc.
			a.dropLocked()
		}
	}()
	if _, err := nc.Write([]byte(cmd + "\n")); err != nil {
		return nil, err
	}
	return readAdminReply(a.r, multi, a.opts.MaxResponse)
}

// readAdminReply reads one reply: a single line, or lines up to ".". Both
// "\n" and "\r\n" endings are accepted. A first line "ERR code text" is a
// *ServerError. The returned bytes exclude the final line ending and the
// "." line.
func readAdminReply(r *bufio.Reader, multi bool, max int) ([]byte, error) {
	var out []byte
	for first := true; ; first = false {
		line, err := readLine(r, max-len(out))
		if err != nil {
			return nil, err
		}
		if first && bytes.HasPrefix(line, []byte("ERR")) && (len(line) == 3 || line[3] == ' ') {
			return nil, parseErrLine(line)
		}
		if !multi {
			return line, nil
		}
		if len(line) == 1 && line[0] == '.' {
			return out, nil
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
}

// readLine returns one line without its "\n" or "\r\n", reading across
// buffer boundaries, and fails past max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, ErrResponseTooLarge
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func parseErrLine(line []byte) *ServerError {
	rest := strings.TrimSpace(strings.TrimPrefix(string(line), "ERR"))
	code, text, _ := strings.Cut(rest, " ")
	return &ServerError{Code: code, Text: text}
}

// adminLines splits a reply body into lines, strips "\r", stops at a "."
// line and skips empty lines. A first line "ERR ..." is returned as error.
func adminLines(b []byte) ([]string, error) {
	var lines []string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 1 && line[0] == '.' {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(lines) == 0 && bytes.HasPrefix(line, []byte("ERR")) && (len(line) == 3 || line[3] == ' ') {
			return nil, parseErrLine(line)
		}
		lines = append(lines, string(line))
	}
	return lines, nil
}

// splitCounts splits "NAME<sep>n1<sep>...<sep>nk" into the name and k
// non-negative numbers, taking the numbers from the end so that a name with
// spaces survives. Separators are tabs or spaces.
func splitCounts(line string, k int) (string, []int, error) {
	nums := make([]int, k)
	rest := strings.TrimRight(line, " \t")
	for i := k - 1; i >= 0; i-- {
		j := strings.LastIndexAny(rest, " \t")
		if j < 0 {
			return "", nil, fmt.Errorf("admin line %q: want a name and %d numbers", line, k)
		}
		n, err := strconv.Atoi(rest[j+1:])
		if err != nil || n < 0 {
			return "", nil, fmt.Errorf("admin line %q: bad number %q", line, rest[j+1:])
		}
		nums[i] = n
		rest = strings.TrimRight(rest[:j], " \t")
	}
	if rest == "" {
		return "", nil, fmt.Errorf("admin line %q: empty function name", line)
	}
	return rest, nums, nil
}

// ParseStatus parses the reply of "status" (with or without the final "."
// line), sorted by function name.
func ParseStatus(b []byte) ([]FunctionStatus, error) {
	lines, err := adminLines(b)
	if err != nil {
		return nil, err
	}
	out := make([]FunctionStatus, 0, len(lines))
	for _, l := range lines {
		name, n, err := splitCounts(l, 3)
		if err != nil {
			return nil, err
		}
		out = append(out, FunctionStatus{Name: name, Total: n[0], Running: n[1], Workers: n[2]})
	}
	slices.SortStableFunc(out, func(a, b FunctionStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ParsePriorityStatus parses the reply of "prioritystatus", sorted by
// function name.
func ParsePriorityStatus(b []byte) ([]PriorityStatus, error) {
	lines, err := adminLines(b)
	if err != nil {
		return nil, err
	}
	out := make([]PriorityStatus, 0, len(lines))
	for _, l := range lines {
		name, n, err := splitCounts(l, 4)
		if err != nil {
			return nil, err
		}
		out = append(out, PriorityStatus{Name: name, High: n[0], Normal: n[1], Low: n[2], Workers: n[3]})
	}
	slices.SortStableFunc(out, func(a, b PriorityStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ParseWorkers parses the reply of "workers": lines of
// "FD IP CLIENT-ID : fn fn ...", in server order.
func ParseWorkers(b []byte) ([]WorkerInfo, error) {
	lines, err := adminLines(b)
	if err != nil {
		return nil, err
	}
	out := make([]WorkerInfo, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		colon := slices.Index(f, ":")
		if colon < 3 {
			return nil, fmt.Errorf("workers line %q: want FD IP CLIENT-ID : functions", l)
		}
		// gearmand prints -1 for a connection it is closing.
		fd, err := strconv.Atoi(f[0])
		if err != nil || fd < -1 {
			return nil, fmt.Errorf("workers line %q: bad fd %q", l, f[0])
		}
		wi := WorkerInfo{FD: fd, IP: f[1], ClientID: strings.Join(f[2:colon], " ")}
		if fns := f[colon+1:]; len(fns) > 0 {
			wi.Functions = fns
		}
		out = append(out, wi)
	}
	return out, nil
}
