package plugin

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// restrictedText is the Go worker's output for commands rejected by
// restrict_path (spec §2.6).
const restrictedText = "command contains bad path"

// ErrRestricted is wrapped by [Result.Err] when RestrictPath rejected a
// command.
var ErrRestricted = errors.New("command rejected by restrict_path")

// checkRestricted reports why commandLine may not run under the given path
// prefixes and forbidden characters, or nil if it may.
//
// The first word must be a plain absolute path, written without quotes,
// globs or other shell syntax, so that what is checked is exactly what gets
// executed. It is cleaned lexically ("..") before the prefix comparison,
// which is done per directory: prefix /usr/lib/nagios allows
// /usr/lib/nagios/check_x but not /usr/lib/nagios-evil/x. A leading
// NAME=value word is not an absolute path and is therefore rejected too,
// which keeps LD_PRELOAD and friends out.
func checkRestricted(commandLine string, prefixes []string, forbidden string) error {
	if i := strings.IndexAny(commandLine, forbidden); i >= 0 {
		return fmt.Errorf("%w: forbidden character %q", ErrRestricted, commandLine[i])
	}
	for i := 0; i < len(commandLine); i++ {
		if c := commandLine[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("%w: control character %q", ErrRestricted, c)
		}
	}
	first, _, _ := strings.Cut(strings.TrimLeft(commandLine, " \t"), " ")
	first, _, _ = strings.Cut(first, "\t")
	switch {
	case first == "":
		return fmt.Errorf("%w: empty command", ErrRestricted)
	case !strings.HasPrefix(first, "/"):
		return fmt.Errorf("%w: %q is not an absolute path", ErrRestricted, first)
	case strings.ContainsAny(first, shellMetacharacters+"'\"#"):
		return fmt.Errorf("%w: %q contains shell syntax", ErrRestricted, first)
	}
	path := filepath.Clean(first)
	for _, p := range prefixes {
		p = filepath.Clean(p)
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is not below an allowed path", ErrRestricted, path)
}
