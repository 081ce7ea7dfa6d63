package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// DefaultWatchInterval is how often the bridge looks at the modification
// times of its certificate, CA, revocation and authorization files. One
// second makes a revocation take effect within seconds at the cost of a few
// stat calls.
const DefaultWatchInterval = time.Second

// revokedSessionReason is the close reason of sessions whose certificate
// was revoked.
const revokedSessionReason = "certificate revoked"

// Reload re-reads everything the bridge takes from files: its own TLS
// certificate and CA (Deps.TLS), the CA it signs with (Config.CertsDir), the
// revocation list (in Config.CertsDir or Config.RevocationsFile), the
// authorization file (Config.AuthzFile) and the enrolled rules. A file that fails to load keeps its previous content in
// effect. Sessions of certificates that are now revoked are closed; all
// other sessions are untouched.
func (b *Bridge) Reload() error {
	var errs []error
	if b.tlsR != nil {
		if err := b.tlsR.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.cfg.AuthzFile != "" {
		if az, err := LoadAuthz(b.cfg.AuthzFile); err != nil {
			errs = append(errs, fmt.Errorf("keeping the old authz rules: %w", err))
		} else {
			b.operatorAuthz.Store(az)
		}
	}
	if b.cfg.CertsDir != "" {
		if ca, err := certs.LoadCA(b.cfg.CertsDir); err != nil {
			errs = append(errs, fmt.Errorf("keeping the old CA: %w", err))
		} else {
			b.caPtr.Store(ca)
		}
		b.enrolledMu.Lock()
		if doc, err := readEnrolled(filepath.Join(b.cfg.CertsDir, EnrolledAuthzFile)); err != nil {
			errs = append(errs, fmt.Errorf("keeping the old enrolled rules: %w", err))
		} else {
			b.enrolledRules.Store(toAuthz(doc))
		}
		b.enrolledMu.Unlock()
	}
	if b.revoked != nil {
		if err := b.revoked.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("keeping the old revocation list: %w", err))
		}
	}
	b.applyAuthz()
	b.closeRevoked()
	return errors.Join(errs...)
}

// closeRevoked closes every session whose certificate is revoked, by serial
// or by identity (the revocation list knows the identity of every
// certificate the bridge verified); gearmand requeues their unfinished
// jobs.
func (b *Bridge) closeRevoked() {
	if b.revoked == nil {
		return
	}
	b.mu.Lock()
	var victims []*session
	for _, s := range b.sessions {
		if b.revoked.IsRevokedSerial(s.certSerial()) {
			victims = append(victims, s)
		}
	}
	b.mu.Unlock()
	for _, s := range victims {
		s.log.Warn("closing session: its certificate was revoked", "serial", s.certSerial())
		s.close(revokedSessionReason)
	}
}

// watchedFiles are the files whose change triggers Reload.
func (b *Bridge) watchedFiles() []string {
	var files []string
	if b.tlsR != nil {
		files = append(files, b.tlsR.Files()...)
	}
	if b.cfg.AuthzFile != "" {
		files = append(files, b.cfg.AuthzFile)
	}
	if d := b.cfg.CertsDir; d != "" {
		files = append(files, filepath.Join(d, certs.RevocationsFile), filepath.Join(d, certs.CACertFile),
			filepath.Join(d, certs.CAKeyFile), filepath.Join(d, EnrolledAuthzFile))
	} else if b.cfg.RevocationsFile != "" {
		files = append(files, b.cfg.RevocationsFile)
	}
	return files
}

// watch polls the watched files and reloads when one changes, until ctx
// ends. Polling rather than inotify also catches files replaced by rename
// (as WriteFileAtomic and most editors do) and works on any filesystem.
func (b *Bridge) watch(ctx context.Context) {
	files := b.watchedFiles()
	if len(files) == 0 {
		return
	}
	last := stamps(files)
	t := time.NewTicker(b.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stamps(files)
		if now == last {
			continue
		}
		last = b.settle(ctx, files, now)
		if err := b.Reload(); err != nil {
			b.log.Error("reload after a file changed", "err", err)
		} else {
			b.log.Info("reloaded after a file changed")
		}
	}
}

// settleDelay is how long the watched files must stay unchanged before a
// reload: a renewal writes a key and then its certificate, and a reload
// between the two would find a pair that does not match.
const settleDelay = 100 * time.Millisecond

// settle waits until the files' stamps stop changing (at most a few
// rounds, so a file rewritten all the time cannot hold reloads off) and
// returns the last stamps.
func (b *Bridge) settle(ctx context.Context, files []string, cur string) string {
	for range 5 {
		select {
		case <-ctx.Done():
			return cur
		case <-time.After(min(settleDelay, b.cfg.WatchInterval)):
		}
		next := stamps(files)
		if next == cur {
			return cur
		}
		cur = next
	}
	return cur
}

// stamps summarises the files' identity, size and modification time.
func stamps(files []string) string {
	s := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			s += "-|"
			continue
		}
		s += fmt.Sprintf("%d/%d/%d|", fi.ModTime().UnixNano(), fi.Size(), inode(fi))
	}
	return s
}

// inode distinguishes a file replaced by rename from the old one even when
// size and modification time happen to match.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
