package classicconf

import (
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// format writes c as configuration text: one line per option whose value
// differs from Defaults, canonical names, in table order. Parsing the text
// on top of Defaults gives c back (apart from Warnings and SetByHand).
func format(c Config) string {
	def := Defaults()
	var b strings.Builder
	for _, o := range optionTable() {
		if o.get == nil {
			continue
		}
		got := o.get(&c)
		if slices.Equal(got, o.get(&def)) {
			continue
		}
		for _, v := range got {
			b.WriteString(o.name + "=" + v + "\n")
		}
	}
	return b.String()
}

// comparable strips what legitimately differs between two parses of
// equivalent text.
func comparable(c Config) Config {
	c = c.clone()
	c.Warnings = nil
	c.SetByHand = ExplicitOptions{}
	return c
}

// noFS is a file system without files, for fuzzing and for tests that must
// not touch the disk.
type noFS struct{}

func (noFS) Stat(name string) (fs.FileInfo, error) {
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

func (noFS) ReadFile(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (noFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// parseString parses text named "test.conf" without file access.
func parseString(t *testing.T, text string) (Config, error) {
	t.Helper()
	p := &Parser{FS: noFS{}}
	if err := p.Parse(strings.NewReader(text), "test.conf"); err != nil {
		return Config{}, err
	}
	return p.Config(), nil
}

func mustParse(t *testing.T, text string) Config {
	t.Helper()
	c, err := parseString(t, text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return c
}

func assertEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}
