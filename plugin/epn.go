package plugin

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// epnMarkers start the line that opts a Perl plugin in or out of the
// embedded Perl server: "# nagios: +epn" or "# nagios: -epn" (the classic
// Go worker also reads the naemon and icinga spellings).
var epnMarkers = []string{"# nagios:", "# naemon:", "# icinga:"}

// epnScanLines is how many lines of a plugin are read for the markers,
// the shebang line included, as classic workers do.
const epnScanLines = 10

// detected caches the decision for one version of a file.
type detected struct {
	mtime time.Time
	size  int64
	ino   uint64
	embed bool
}

// embeds decides whether the program argv0 runs in the Perl server. It
// returns the absolute path of the file and the name the plugin sees as
// $0 (the program as exec would start it).
//
// A plugin is embedded when it is an executable regular file whose first
// line is a "#!" line naming perl and whose first 10 lines say "# nagios:
// +epn", or, with PerlConfig.Implicit, do not say "# nagios: -epn" (any
// value not starting with "+" opts out). Everything else, including files
// exec would refuse, is executed, so that errors read as for any plugin.
func (p *Perl) embeds(argv0 string) (path, name string, ok bool) {
	name = argv0
	if !strings.Contains(argv0, "/") {
		lp, err := exec.LookPath(argv0)
		if err != nil {
			return "", "", false
		}
		name = lp
	}
	path, err := filepath.Abs(name)
	if err != nil {
		return "", "", false
	}
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return "", "", false
	}
	if syscall.Access(path, 1 /* X_OK */) != nil {
		return "", "", false
	}
	st, _ := info.Sys().(*syscall.Stat_t)
	var ino uint64
	if st != nil {
		ino = st.Ino
	}
	p.detectMu.Lock()
	d, hit := p.detect[path]
	p.detectMu.Unlock()
	if hit && d.mtime.Equal(info.ModTime()) && d.size == info.Size() && d.ino == ino {
		return path, name, d.embed
	}
	d = detected{mtime: info.ModTime(), size: info.Size(), ino: ino, embed: p.scan(path)}
	p.detectMu.Lock()
	p.detect[path] = d
	p.detectMu.Unlock()
	return path, name, d.embed
}

// scan reads the head of a plugin file for the shebang and the markers.
func (p *Perl) scan(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	perl := false
	for n := 1; n <= epnScanLines && sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 1 {
			if !bytes.HasPrefix(line, []byte("#!")) || !bytes.Contains(line, []byte("perl")) {
				return false
			}
			perl = true
			continue
		}
		for _, m := range epnMarkers {
			if rest, found := bytes.CutPrefix(line, []byte(m)); found {
				return bytes.HasPrefix(bytes.TrimSpace(rest), []byte("+"))
			}
		}
	}
	return perl && p.cfg.Implicit
}
