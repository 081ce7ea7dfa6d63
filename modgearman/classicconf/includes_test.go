package classicconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIncludeDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.conf"), "hostgroups=main\ninclude=conf.d\nhostgroups=after\n")
	writeFile(t, filepath.Join(dir, "conf.d", "b.conf"), "hostgroups=b\n")
	writeFile(t, filepath.Join(dir, "conf.d", "a.cfg"), "hostgroups=a\n")
	writeFile(t, filepath.Join(dir, "conf.d", "c.txt"), "garbage\n")
	writeFile(t, filepath.Join(dir, "conf.d", "d.conf~"), "garbage\n")
	writeFile(t, filepath.Join(dir, "conf.d", "sub", "x.conf"), "hostgroups=sub-x\n")
	writeFile(t, filepath.Join(dir, "conf.d", "z.cfg"), "hostgroups=z\n")
	if err := os.Symlink("b.conf", filepath.Join(dir, "conf.d", "link.conf")); err != nil {
		t.Fatal(err)
	}
	c, err := ParseFile(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// link.conf repeats b: a duplicate, dropped with a warning.
	assertEqual(t, "HostGroups", c.HostGroups, []string{"main", "a", "b", "sub-x", "z", "after"})
	assertEqual(t, "warnings", len(c.Warnings), 1)

	// ParseFile accepts a directory too.
	c, err = ParseFile(filepath.Join(dir, "conf.d"))
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "HostGroups of the directory", c.HostGroups, []string{"a", "b", "sub-x", "z"})
}

func TestIncludeDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.conf"), "include=d\n")
	writeFile(t, filepath.Join(dir, "d", "ok.conf"), "debug=1\n")
	if err := os.Symlink("missing", filepath.Join(dir, "d", "README")); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(filepath.Join(dir, "main.conf")); err != nil {
		t.Fatalf("dangling symlink without a config suffix must be skipped: %v", err)
	}
	if err := os.Symlink("missing", filepath.Join(dir, "d", "gone.conf")); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(filepath.Join(dir, "main.conf"))
	var e *Error
	if !errors.As(err, &e) || e.Line != 1 || e.Key != "include" || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist at the include line", err)
	}
}

// TestIncludeDepth builds chains of nested includes: ten levels are fine,
// eleven are an error at the include line of the tenth file.
func TestIncludeDepth(t *testing.T) {
	chain := func(t *testing.T, levels int) string {
		dir := t.TempDir()
		for i := range levels + 1 {
			text := fmt.Sprintf("hostgroups=g%d\n", i)
			if i < levels {
				// Alternate directories to exercise relative resolution.
				text += fmt.Sprintf("# level %d\nconfig=sub/f%d.conf\n", i, i+1)
			}
			path := filepath.Join(dir, strings.Repeat("sub/", i), fmt.Sprintf("f%d.conf", i))
			writeFile(t, path, text)
		}
		return filepath.Join(dir, "f0.conf")
	}
	c, err := ParseFile(chain(t, MaxIncludeDepth))
	if err != nil {
		t.Fatalf("%d levels: %v", MaxIncludeDepth, err)
	}
	assertEqual(t, "groups", len(c.HostGroups), MaxIncludeDepth+1)

	_, err = ParseFile(chain(t, MaxIncludeDepth+1))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInclude) {
		t.Fatalf("err = %v, want an include *Error", err)
	}
	if !strings.HasSuffix(e.File, "f10.conf") || e.Line != 3 || e.Key != "config" {
		t.Errorf("error at %s:%d key %q, want f10.conf:3 key config", e.File, e.Line, e.Key)
	}
	if !strings.Contains(err.Error(), "nested deeper than 10") || !strings.Contains(err.Error(), "f0.conf -> ") || !strings.HasSuffix(err.Error(), "f11.conf") {
		t.Errorf("error %q does not show the chain", err)
	}
}

func TestIncludeSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.conf"), "include=d\n")
	writeFile(t, filepath.Join(dir, "d", "x.conf"), "debug=1\n")
	if err := os.Symlink(".", filepath.Join(dir, "d", "loop")); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(filepath.Join(dir, "main.conf"))
	if !errors.Is(err, ErrInclude) {
		t.Fatalf("err = %v, want ErrInclude", err)
	}
}

func TestIncludeOwnDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.conf"), "include=.\n")
	_, err := ParseFile(filepath.Join(dir, "main.conf"))
	if !errors.Is(err, ErrInclude) || !strings.Contains(err.Error(), "include cycle") {
		t.Fatalf("err = %v, want an include cycle", err)
	}
}

// TestIncludeDiamond: the same file twice, but not nested, is no cycle.
func TestIncludeDiamond(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.conf"), "include=a.conf\ninclude=b.conf\n")
	writeFile(t, filepath.Join(dir, "a.conf"), "include=common.conf\n")
	writeFile(t, filepath.Join(dir, "b.conf"), "include=common.conf\n")
	writeFile(t, filepath.Join(dir, "common.conf"), "debug=2\n")
	if _, err := ParseFile(filepath.Join(dir, "main.conf")); err != nil {
		t.Fatal(err)
	}
}

func TestIncludeRelativeToDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "extra.conf"), "debug=4\n")
	p := &Parser{Dir: dir}
	if err := p.Parse(strings.NewReader("include=extra.conf\n"), "stdin"); err != nil {
		t.Fatal(err)
	}
	if err := p.ParseBrokerArgs("config=extra.conf"); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Debug", p.Config().Debug, 4)
	abs := &Parser{}
	if err := abs.ParseArgs([]string{"--config=" + filepath.Join(dir, "extra.conf")}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Debug", abs.Config().Debug, 4)
}
