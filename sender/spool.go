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
	// Dir holds the spool; it is created (0700) when missing.
	Dir string
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
	if err := os.MkdirAll(filepath.Join(cfg.Dir, deadDir), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &Spool{cfg: cfg, log: log}, nil
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
	Delivered int // results acknowledged and removed from the spool
	Dead      int // results refused for good, moved to dead/
	Remaining int // entries still spooled (an entry holds the results of one Append)
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
func (s *Spool) Drain(ctx context.Context, t Transport) (DrainReport, error) {
	var rep DrainReport
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
	outcomes := t.Send(ctx, results)
	var failure string
	delivered := 0
	k := 0
	for _, b := range batch {
		var keep, dead []Result
		var reasons []string
		for _, r := range b.ent.Results {
			o := outcomes[k]
			k++
			switch {
			case o.Accepted:
				delivered++
			case o.Retry || o.Call:
				keep = append(keep, r)
				if failure == "" {
					failure = o.Reason
				}
			default:
				dead = append(dead, r)
				reasons = append(reasons, o.Reason)
			}
		}
		if len(dead) > 0 {
			data, _ := encodeEntry(spoolEntry{Created: b.ent.Created, Results: dead, Reasons: reasons})
			if err := writeDurable(filepath.Join(s.cfg.Dir, deadDir), "refused-"+b.name, data); err != nil {
				return false, fmt.Errorf("spool: %w", err)
			}
			rep.Dead += len(dead)
			s.cfg.Metrics.addDead("refused", len(dead))
			s.log.Error("spooled results REFUSED by the receiver, moved to dead/", "entry", b.name, "results", len(dead), "reason", reasons[0])
		}
		if len(keep) == 0 {
			if err := os.Remove(filepath.Join(s.cfg.Dir, b.name)); err != nil {
				return false, fmt.Errorf("spool: remove delivered entry: %w", err)
			}
			continue
		}
		if len(keep) < len(b.ent.Results) {
			data, _ := encodeEntry(spoolEntry{Created: b.ent.Created, Results: keep})
			if err := writeDurable(s.cfg.Dir, b.name, data); err != nil {
				return false, fmt.Errorf("spool: %w", err)
			}
			// Keep the entry's age: it counts from the first spooling.
			_ = os.Chtimes(filepath.Join(s.cfg.Dir, b.name), b.ent.Created, b.ent.Created)
		}
		remaining++
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	rep.Delivered += delivered
	s.cfg.Metrics.addDelivered(delivered)
	s.cfg.Metrics.addAccepted(delivered)
	rep.Remaining = remaining
	if failure != "" {
		return false, fmt.Errorf("%w: %s", ErrUndelivered, failure)
	}
	return remaining == 0, nil
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
	target := filepath.Join(s.cfg.Dir, deadDir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = filepath.Join(s.cfg.Dir, deadDir, fmt.Sprintf("%s.%d", name, i))
	}
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
