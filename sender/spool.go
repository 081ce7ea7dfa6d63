package sender

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spool defaults.
const (
	// DefaultSpoolMaxBytes bounds the spool: at roughly 300 bytes per
	// result it holds about 350,000 results, days of a busy site's passive
	// checks, while a full disk stays unlikely.
	DefaultSpoolMaxBytes = 100 << 20
	// DefaultSpoolMaxAge is how long a result may wait: after a week the
	// core has long moved on and the result is more confusing than useful,
	// so it is moved to dead/ (never deleted) for an operator to look at.
	DefaultSpoolMaxAge = 7 * 24 * time.Hour
	// DefaultSpoolLockTimeout bounds the wait for another process that holds
	// the spool (it holds it for one batch at a time).
	DefaultSpoolLockTimeout = 30 * time.Second
	// DefaultDrainBatch is the number of results sent per drain step.
	DefaultDrainBatch = DefaultBatchSize
)

// Spool file names.
const (
	spoolExt  = ".spool"
	deadDir   = "dead"
	lockFile  = ".lock"
	tmpPrefix = ".tmp-"
	staleTemp = time.Hour
)

// ErrSpoolFull is returned when a result does not fit into the spool.
var ErrSpoolFull = errors.New("spool is full")

// SpoolConfig configures a [Spool].
type SpoolConfig struct {
	// Dir holds the spool; it is created (0700) when missing, by
	// OpenSpool or, when Lazy, by the first Append.
	Dir string
	// Lazy defers creating Dir to the first Append: a missing directory
	// is an empty spool, so that a one-shot sender that delivers at once
	// leaves nothing behind.
	Lazy bool
	// MaxBytes bounds the size of the spooled entries; 0 means
	// DefaultSpoolMaxBytes.
	MaxBytes int64
	// MaxAge is how long an entry may wait before it is moved to dead/;
	// 0 means DefaultSpoolMaxAge.
	MaxAge time.Duration
	// LockTimeout bounds the wait for the spool lock; 0 means
	// DefaultSpoolLockTimeout.
	LockTimeout time.Duration
	// DrainBatch is the number of results per drain step; 0 means
	// DefaultDrainBatch.
	DrainBatch int
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
}

// Spool keeps undelivered results on disk, durably and in order.
//
// Each entry is one file named after a monotonic sequence number (the
// larger of the wall clock in nanoseconds and the last entry's number plus
// one), holding the results of one Append. A file is written under a
// temporary name, fsynced, renamed and the directory fsynced before Append
// returns. Entries are delivered oldest first and deleted only after every
// result in them was acknowledged (or refused for good and moved to dead/).
// Several processes may share a spool: every operation holds an exclusive
// flock on Dir/.lock.
type Spool struct {
	cfg SpoolConfig
	log *slog.Logger
	mu  sync.Mutex // orders this process's goroutines before the flock
	fs  spoolFS
}

// spoolFS holds the file operations that change a spool, so that tests can
// make them fail (a full disk, a broken dead/).
type spoolFS struct {
	writeDurable func(dir, name string, data []byte) error
	overwrite    func(path string, data []byte) error
	remove       func(path string) error
}

// OpenSpool creates the spool directories if needed.
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultSpoolMaxBytes
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultSpoolMaxAge
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultSpoolLockTimeout
	}
	if cfg.DrainBatch <= 0 {
		cfg.DrainBatch = DefaultDrainBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Lazy {
		if err := makeSpoolDirs(cfg.Dir); err != nil {
			return nil, err
		}
	}
	return &Spool{cfg: cfg, log: log, fs: spoolFS{writeDurable: writeDurable, overwrite: overwriteInPlace, remove: os.Remove}}, nil
}

func makeSpoolDirs(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, deadDir), 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// absent reports a lazy spool whose directory was never created: it holds
// nothing.
func (s *Spool) absent() bool {
	if !s.cfg.Lazy {
		return false
	}
	_, err := os.Stat(s.cfg.Dir)
	return errors.Is(err, fs.ErrNotExist)
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.cfg.Dir }

// entryInfo is one spooled file.
type entryInfo struct {
	name string
	seq  uint64
	size int64
	mod  time.Time
}

// lock takes the in-process mutex and the directory flock.
func (s *Spool) lock(ctx context.Context) (unlock func(), err error) {
	s.mu.Lock()
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	deadline := time.Now().Add(s.cfg.LockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			s.mu.Unlock()
			return nil, fmt.Errorf("spool lock: %w", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			s.mu.Unlock()
			return nil, fmt.Errorf("spool %s is locked by another process for more than %v", s.cfg.Dir, s.cfg.LockTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		s.mu.Unlock()
	}, nil
}

// list returns the entries oldest first. Caller holds the lock.
func (s *Spool) list() ([]entryInfo, error) {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", s.cfg.Dir, err)
	}
	var out []entryInfo
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			// A temporary file older than any write can take is the
			// leftover of a crash before its rename: never acknowledged
			// as spooled, so it is removed.
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				_ = os.Remove(filepath.Join(s.cfg.Dir, name))
			}
			continue
		}
		num, ok := strings.CutSuffix(name, spoolExt)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("spool: %w", err)
		}
		out = append(out, entryInfo{name: name, seq: seq, size: fi.Size(), mod: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b entryInfo) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out, nil
}

// expire moves entries older than MaxAge to dead/ and returns the rest.
// Caller holds the lock.
func (s *Spool) expire(entries []entryInfo) []entryInfo {
	now := s.cfg.Now()
	keep := entries[:0:0]
	var moved, results int
	for _, e := range entries {
		if now.Sub(e.mod) <= s.cfg.MaxAge {
			keep = append(keep, e)
			continue
		}
		n := 0
		if ent, err := s.read(e.name); err == nil {
			n = len(ent.Results)
		}
		if err := s.toDead(e.name); err != nil {
			s.log.Error("move expired spool entry to dead/", "entry", e.name, "err", err)
			keep = append(keep, e)
			continue
		}
		moved++
		results += n
	}
	if moved > 0 {
		_ = syncDir(s.cfg.Dir)
		s.cfg.Metrics.addDead("expired", results)
		s.log.Error("EXPIRED spool entries moved to dead/; these results were NOT delivered",
			"entries", moved, "results", results, "max_age", s.cfg.MaxAge, "dead_dir", filepath.Join(s.cfg.Dir, deadDir))
	}
	return keep
}

// Append writes results as one new entry and returns once it is durable.
// It returns an error wrapping ErrSpoolFull, naming the sizes, when the
// entry would take the spool over MaxBytes.
func (s *Spool) Append(ctx context.Context, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	data, err := encodeEntry(spoolEntry{Created: s.cfg.Now().UTC(), Results: results})
	if err != nil {
		return fmt.Errorf("spool: encode: %w", err)
	}
	if s.cfg.Lazy {
		if err := makeSpoolDirs(s.cfg.Dir); err != nil {
			return err
		}
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	entries, err := s.list()
	if err != nil {
		return err
	}
	entries = s.expire(entries)
	var total int64
	var last uint64
	for _, e := range entries {
		total += e.size
		last = max(last, e.seq)
	}
	if total+int64(len(data)) > s.cfg.MaxBytes {
		s.cfg.Metrics.addSpoolFull(len(results))
		return fmt.Errorf("%w: %s holds %d bytes in %d entries, limit %d bytes; %d result(s) of %d bytes NOT spooled",
			ErrSpoolFull, s.cfg.Dir, total, len(entries), s.cfg.MaxBytes, len(results), len(data))
	}
	seq := max(uint64(s.cfg.Now().UnixNano()), last+1)
	if err := writeDurable(s.cfg.Dir, seqName(seq), data); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.cfg.Metrics.addSpooled(len(results))
	return nil
}

func seqName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, spoolExt) }

// Stats reports the number of entries and results waiting and their size.
func (s *Spool) Stats(ctx context.Context) (entries, results int, bytes int64, err error) {
	if s.absent() {
		return 0, 0, 0, nil
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	defer unlock()
	list, err := s.list()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range list {
		bytes += e.size
		if ent, err := s.read(e.name); err == nil {
			results += len(ent.Results)
		}
	}
	return len(list), results, bytes, nil
}

// Results returns every spooled result, oldest first (for tests and
// inspection).
func (s *Spool) Results(ctx context.Context) ([]Result, error) {
	if s.absent() {
		return nil, nil
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	list, err := s.list()
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, e := range list {
		ent, err := s.read(e.name)
		if err != nil {
			return nil, err
		}
		out = append(out, ent.Results...)
	}
	return out, nil
}

// DrainReport counts what one Drain did.
type DrainReport struct {
	// Delivered counts results the receiver acknowledged. They have left
	// the spool unless Drain's error says they could not be removed.
	Delivered int
	Dead      int // results refused for good, moved to dead/
	Remaining int // entries still spooled (an entry holds the results of one Append)
	// Refused is set when the receiver refused the call itself (a
	// certificate, permission or protocol problem): retrying soon will not
	// help, so a daemon backs off.
	Refused bool
}

// ErrUndelivered is wrapped by Drain's error when the receiver could not
// take the spooled results now.
var ErrUndelivered = errors.New("spooled results not delivered")

// Drain delivers spooled entries oldest first through t, DrainBatch
// results per step, until the spool is empty, a step fails or ctx ends.
// Results refused for good are moved to dead/ with their reasons. On a
// temporary failure the undelivered results stay (the entry is rewritten
// without the ones that were accepted) and Drain stops, returning an error
// wrapping ErrUndelivered, so that later entries never overtake earlier
// ones.
//
// After a step has sent its batch, the accepted results are removed from
// their entries first, durably, and only then are refused ones moved to
// dead/: a failing file operation (a full disk, a broken dead/) stops the
// drain with the spool still holding exactly what was not accepted, so the
// next drain sends nothing twice and loses nothing.
func (s *Spool) Drain(ctx context.Context, t Transport) (DrainReport, error) {
	var rep DrainReport
	if s.absent() {
		return rep, nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		done, err := s.drainStep(ctx, t, &rep)
		if err != nil || done {
			return rep, err
		}
	}
}

func (s *Spool) drainStep(ctx context.Context, t Transport, rep *DrainReport) (done bool, err error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	list, err := s.list()
	if err != nil {
		return false, err
	}
	list = s.expire(list)
	if len(list) == 0 {
		rep.Remaining = 0
		return true, nil
	}
	type loaded struct {
		name string
		ent  spoolEntry
	}
	var batch []loaded
	var results []Result
	remaining := 0
	for i, e := range list {
		ent, err := s.read(e.name)
		if err != nil {
			s.log.Error("CORRUPT spool entry moved to dead/", "entry", e.name, "err", err)
			if err := s.toDead(e.name); err != nil {
				return false, err
			}
			s.cfg.Metrics.addDead("corrupt", 1)
			continue
		}
		if len(batch) > 0 && len(results)+len(ent.Results) > s.cfg.DrainBatch {
			// Only the batch is read: later entries are counted, not loaded.
			remaining = len(list) - i
			break
		}
		batch = append(batch, loaded{e.name, ent})
		results = append(results, ent.Results...)
	}
	if len(batch) == 0 {
		return true, syncDir(s.cfg.Dir)
	}
	var outcomes []Outcome
	if len(results) > 0 {
		outcomes = t.Send(ctx, results)
	}
	// What happened to each entry's results, in their order.
	type fate struct {
		accepted int
		rest     []Result // not accepted: kept for later or refused
		keep     []Result // refused for now
		dead     []Result // refused for good
		reasons  []string
	}
	fates := make([]fate, len(batch))
	var failure string
	delivered, k := 0, 0
	for i, b := range batch {
		f := &fates[i]
		for _, r := range b.ent.Results {
			o := outcomes[k]
			k++
			switch {
			case o.Accepted:
				f.accepted++
			case o.Retry || o.Call:
				rep.Refused = rep.Refused || o.Call
				f.rest = append(f.rest, r)
				f.keep = append(f.keep, r)
				if failure == "" {
					failure = o.Reason
				}
			default:
				f.rest = append(f.rest, r)
				f.dead = append(f.dead, r)
				f.reasons = append(f.reasons, o.Reason)
			}
		}
		delivered += f.accepted
	}
	// The receiver has the accepted results whatever happens below.
	rep.Delivered += delivered
	s.cfg.Metrics.addDelivered(delivered)
	s.cfg.Metrics.addAccepted(delivered)
	left := len(batch) // batch entries that still hold results
	rep.Remaining = remaining + left

	// First the accepted results leave the spool, durably, before anything
	// else can fail: a failure further on then never makes the next drain
	// send them again. An entry that cannot be rewritten keeps everything
	// and is sent again (the receiver sees those results twice), which is
	// why rewrite tries hard.
	var errs []error
	for i, b := range batch {
		f := fates[i]
		if f.accepted == 0 && len(b.ent.Results) > 0 {
			continue
		}
		if err := s.rewrite(b.name, b.ent.Created, f.rest); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(f.rest) == 0 {
			left--
		}
	}
	rep.Remaining = remaining + left
	if err := syncDir(s.cfg.Dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("spool: delivered results left in %s will be sent again: %w", s.cfg.Dir, errors.Join(errs...))
	}

	// Then the refused results move to dead/ and leave their entry. If
	// either step fails they stay spooled (and may end up in dead/ twice).
	for i, b := range batch {
		f := fates[i]
		if len(f.dead) == 0 {
			continue
		}
		data, err := encodeEntry(spoolEntry{Created: b.ent.Created, Results: f.dead, Reasons: f.reasons})
		if err == nil {
			err = s.writeDead("refused-"+b.name, data)
		}
		if err != nil {
			return false, fmt.Errorf("spool: move refused results to dead/: %w", err)
		}
		rep.Dead += len(f.dead)
		s.cfg.Metrics.addDead("refused", len(f.dead))
		s.log.Error("spooled results REFUSED by the receiver, moved to dead/", "entry", b.name, "results", len(f.dead), "reason", f.reasons[0])
		if err := s.rewrite(b.name, b.ent.Created, f.keep); err != nil {
			return false, fmt.Errorf("spool: %w", err)
		}
		if len(f.keep) == 0 {
			left--
			rep.Remaining = remaining + left
		}
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	if failure != "" {
		return false, fmt.Errorf("%w: %s", ErrUndelivered, failure)
	}
	return rep.Remaining == 0, nil
}

// rewrite makes entry name hold rest, or removes it when rest is empty.
// When the atomic way fails (a full disk cannot take the temporary file;
// the directory refuses the removal) it overwrites the file in place, which
// needs no new blocks on most file systems: rest is padded with blanks to
// the file's size, or replaced by an entry without results that the next
// drain removes. (A crash during that write can tear the entry; the next
// drain then moves it to dead/ as corrupt, where nothing is lost.)
func (s *Spool) rewrite(name string, created time.Time, rest []Result) error {
	path := filepath.Join(s.cfg.Dir, name)
	data, err := encodeEntry(spoolEntry{Created: created, Results: rest})
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if len(rest) == 0 {
		err = s.fs.remove(path)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		err = fmt.Errorf("remove delivered entry: %w", err)
	} else {
		err = s.fs.writeDurable(s.cfg.Dir, name, data)
	}
	if err != nil {
		if ferr := s.fs.overwrite(path, data); ferr != nil {
			return fmt.Errorf("rewrite entry %s: %w", name, errors.Join(err, ferr))
		}
		s.log.Warn("spool entry rewritten in place", "entry", name, "err", err)
	}
	// Keep the entry's age: it counts from the first spooling.
	_ = os.Chtimes(path, created, created)
	return nil
}

// overwriteInPlace writes data over the start of the existing file path,
// padded with blanks (JSON whitespace) to the file's size, and fsyncs it.
func overwriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if int64(len(data)) > fi.Size() {
		return fmt.Errorf("overwrite %s: %d bytes do not fit into %d", path, len(data), fi.Size())
	}
	buf := make([]byte, fi.Size())
	copy(buf, data)
	for i := len(data); i < len(buf); i++ {
		buf[i] = ' '
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// writeDead writes data to dead/ under name, or under name.N when that is
// taken: a file already there holds other results of the same entry.
func (s *Spool) writeDead(name string, data []byte) error {
	dir := filepath.Join(s.cfg.Dir, deadDir)
	return s.fs.writeDurable(dir, freeName(dir, name), data)
}

// freeName returns name, or name.N for the smallest N, that does not exist
// in dir. When dir cannot be read it returns name, and the write that
// follows reports why. Caller holds the lock.
func freeName(dir, name string) string {
	target := name
	for i := 1; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, target)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return target
			}
			return name
		}
		target = fmt.Sprintf("%s.%d", name, i)
	}
}

func (s *Spool) read(name string) (spoolEntry, error) {
	var ent spoolEntry
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, name))
	if err != nil {
		return ent, fmt.Errorf("spool: %w", err)
	}
	if ent, err = decodeEntry(data); err != nil {
		return ent, fmt.Errorf("spool entry %s: %w", name, err)
	}
	return ent, nil
}

// toDead moves an entry to dead/ without overwriting anything there.
func (s *Spool) toDead(name string) error {
	target := filepath.Join(s.cfg.Dir, deadDir, freeName(filepath.Join(s.cfg.Dir, deadDir), name))
	if err := os.Rename(filepath.Join(s.cfg.Dir, name), target); err != nil {
		return fmt.Errorf("spool: move to dead/: %w", err)
	}
	return syncDir(filepath.Join(s.cfg.Dir, deadDir))
}

// writeDurable writes data to dir/name through a temporary file: write,
// fsync, rename, fsync the directory.
func writeDurable(dir, name string, data []byte) (err error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
