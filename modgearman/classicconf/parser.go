package classicconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxIncludeDepth is the deepest include nesting accepted, as in classic
// Mod-Gearman. Each included file and each directory level counts as one.
const MaxIncludeDepth = 10

// Source names used in [Error.File] for non-file sources.
const (
	SourceBrokerLine  = "broker line"
	SourceCommandLine = "command line"
)

// FileSystem is the file access the parser needs. Paths are operating
// system paths, relative ones relative to the process working directory.
type FileSystem interface {
	Stat(name string) (fs.FileInfo, error)
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]fs.DirEntry, error)
}

// osFileSystem is the operating system's file system.
type osFileSystem struct{}

func (osFileSystem) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }
func (osFileSystem) ReadFile(name string) ([]byte, error)       { return os.ReadFile(name) }
func (osFileSystem) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// Parser merges configuration sources in the order they are parsed: later
// sources override scalar options and add to list options. The zero value is
// ready to use and starts from [Defaults]. Each Parse method applies its
// whole source or, on error, nothing. A Parser is not safe for concurrent
// use.
type Parser struct {
	// FS reads configuration files; nil means the operating system.
	FS FileSystem
	// Dir is the directory against which relative include paths in
	// Parse, ParseBrokerArgs and ParseArgs are resolved; empty means the
	// process working directory. Includes inside a file are always
	// resolved against that file's directory.
	Dir string

	cfg *Config
}

// NewParser returns a Parser that starts from [Defaults] and reads the
// operating system's files.
func NewParser() *Parser { return &Parser{} }

// Config returns a copy of the configuration merged so far.
func (p *Parser) Config() Config {
	if p.cfg == nil {
		return Defaults()
	}
	return p.cfg.clone()
}

// ParseFile parses the configuration file (or directory of .cfg and .conf
// files) at path.
func (p *Parser) ParseFile(path string) error {
	return p.run(func(st *state) error {
		return st.includePath(nil, filepath.Clean(path), 0)
	})
}

// Parse parses configuration text read from r; name is used in errors and
// warnings. Relative includes are resolved against p.Dir.
func (p *Parser) Parse(r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return &Error{File: name, Err: fmt.Errorf("read config: %w", err)}
	}
	return p.run(func(st *state) error {
		return st.parseText(name, data, p.Dir, 0)
	})
}

// ParseBrokerArgs parses the arguments of a broker_module line, the text
// after the module path, split at single spaces. [Error.Line] is the
// 1-based position among the non-empty arguments.
func (p *Parser) ParseBrokerArgs(args string) error {
	var tokens []string
	for _, t := range strings.Split(args, " ") {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	return p.run(func(st *state) error {
		return st.parseArgs(SourceBrokerLine, tokens)
	})
}

// ParseArgs parses command-line style arguments: --key=value, -k=value,
// key=value, and bare --flag for boolean options. A value must be joined
// with '=' ("-r 0" is two arguments and an error, as in classic C).
// --help and --version are not options; handle them before. [Error.Line]
// is the 1-based index in args.
func (p *Parser) ParseArgs(args []string) error {
	return p.run(func(st *state) error {
		return st.parseArgs(SourceCommandLine, args)
	})
}

// run applies fn to a copy of the configuration and keeps the copy only if
// fn succeeds.
func (p *Parser) run(fn func(*state) error) error {
	work := p.Config()
	fsys := p.FS
	if fsys == nil {
		fsys = osFileSystem{}
	}
	st := &state{fsys: fsys, idx: newOptionIndex(), cfg: &work, dir: p.Dir}
	if err := fn(st); err != nil {
		return err
	}
	p.cfg = &work
	return nil
}

// ParseFile parses one configuration file on top of [Defaults].
func ParseFile(path string) (Config, error) {
	return parseOne(func(p *Parser) error { return p.ParseFile(path) })
}

// Parse parses configuration text on top of [Defaults]; name is used in
// errors. Relative includes are resolved against the working directory.
func Parse(r io.Reader, name string) (Config, error) {
	return parseOne(func(p *Parser) error { return p.Parse(r, name) })
}

// ParseBrokerArgs parses broker_module arguments on top of [Defaults].
func ParseBrokerArgs(args string) (Config, error) {
	return parseOne(func(p *Parser) error { return p.ParseBrokerArgs(args) })
}

// ParseArgs parses command-line arguments on top of [Defaults].
func ParseArgs(args []string) (Config, error) {
	return parseOne(func(p *Parser) error { return p.ParseArgs(args) })
}

func parseOne(fn func(*Parser) error) (Config, error) {
	p := NewParser()
	if err := fn(p); err != nil {
		return Config{}, err
	}
	return p.Config(), nil
}

// Set applies one option to c, as a line key=value would. Includes are not
// possible here; use a [Parser]. On error c is unchanged.
func (c *Config) Set(key, value string) error {
	key, value = trim(key), trim(value)
	at := location{key: key}
	if key == "" {
		return at.err(syntaxf("empty key"))
	}
	o, err := newOptionIndex().lookup(key)
	if err != nil {
		return at.err(err)
	}
	if o.include {
		return at.err(includef(nil, "includes need a Parser"))
	}
	w, err := o.set(c, value)
	if err != nil {
		return at.err(err)
	}
	for _, msg := range w {
		c.Warnings = append(c.Warnings, at.warning(msg))
	}
	return nil
}

// location is where an option was found.
type location struct {
	file string
	line int
	key  string
}

func (l location) err(err error) *Error {
	return &Error{File: l.file, Line: l.line, Key: l.key, Err: err}
}

func (l location) warning(msg string) string {
	return l.err(errors.New(msg)).Error()
}

// state is one run of the parser over one source and its includes.
type state struct {
	fsys  FileSystem
	idx   optionIndex
	cfg   *Config
	dir   string
	stack []string // files and directories being read, outermost first
}

var utf8BOM = []byte("\xef\xbb\xbf")

// parseText parses the lines of a file; dir resolves relative includes.
func (st *state) parseText(name string, data []byte, dir string, depth int) error {
	data = bytes.TrimPrefix(data, utf8BOM)
	for i, line := range strings.Split(string(data), "\n") {
		line = trim(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		// Leading dashes are stripped as on the command line (the classic
		// parser does so for files too): --key=value, and a bare --flag
		// enables a boolean option. A bare word without dashes stays an
		// error, as it is more likely a typo than a flag.
		dashed := line[0] == '-'
		key, value := strings.TrimLeft(trim(k), "-"), trim(v)
		at := location{file: name, line: i + 1, key: key}
		switch {
		case dashed && trim(key) == "":
			at.key = ""
			return at.err(syntaxf("empty key in %q", line))
		case dashed && key != trim(key):
			// "- hosts" is a YAML list item, not an option.
			at.key = line
			return at.err(syntaxf("white space after the dashes (want --key=value)"))
		case !ok && dashed:
			o, err := st.idx.lookup(key)
			if err != nil {
				return at.err(err)
			}
			if o.bare == "" {
				return at.err(syntaxf("option needs a value (write --%s=<value>)", key))
			}
			value = o.bare
		case !ok:
			at.key = line
			return at.err(syntaxf(`missing "=" (want key=value)`))
		case key == "":
			return at.err(syntaxf("empty key"))
		}
		inline := strings.Contains(value, "#")
		if err := st.apply(at, value, dir, depth); err != nil {
			// Classic C cut the line at '#'; say why the value looks odd.
			if e, ok := err.(*Error); ok && inline && e.File == at.file && e.Line == at.line {
				e.Err = fmt.Errorf(`%w (a "#" inside a line does not start a comment)`, e.Err)
			}
			return err
		}
		if inline {
			st.warn(at, `value contains "#"; only lines starting with "#" are comments, so it is kept as part of the value`)
		}
	}
	return nil
}

// parseArgs parses broker-line or command-line arguments.
func (st *state) parseArgs(name string, args []string) error {
	for i, a := range args {
		k, v, hasValue := strings.Cut(strings.TrimLeft(trim(a), "-"), "=")
		key, value := trim(k), trim(v)
		at := location{file: name, line: i + 1, key: key}
		if key == "" {
			return at.err(syntaxf("empty key in argument %q", a))
		}
		if !hasValue {
			o, err := st.idx.lookup(key)
			if err != nil {
				return at.err(err)
			}
			if o.bare == "" {
				return at.err(syntaxf("option needs a value (write --%s=<value>)", key))
			}
			value = o.bare
		}
		if err := st.apply(at, value, st.dir, 0); err != nil {
			return err
		}
	}
	return nil
}

// apply sets one option or follows an include.
func (st *state) apply(at location, value, dir string, depth int) error {
	o, err := st.idx.lookup(at.key)
	if err != nil {
		return at.err(err)
	}
	if o.include {
		return st.include(at, value, dir, depth)
	}
	w, err := o.set(st.cfg, value)
	if err != nil {
		return at.err(err)
	}
	for _, msg := range w {
		st.warn(at, msg)
	}
	return nil
}

func (st *state) warn(at location, msg string) {
	st.cfg.Warnings = append(st.cfg.Warnings, at.warning(msg))
}

// include follows config=, configfile= or include= found at.
func (st *state) include(at location, target, dir string, depth int) error {
	if target == "" {
		return at.err(includef(nil, "empty include path"))
	}
	path := target
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	return st.includePath(&at, filepath.Clean(path), depth+1)
}

// includePath reads the file or directory path at the given depth. Errors
// are reported at the include line at, or for path itself when at is nil.
func (st *state) includePath(at *location, path string, depth int) error {
	fail := func(err error) error {
		if at == nil {
			return &Error{File: path, Err: err}
		}
		return at.err(err)
	}
	chain := func() string { return strings.Join(append(slices.Clone(st.stack), path), " -> ") }
	if slices.Contains(st.stack, path) {
		return fail(includef(nil, "include cycle: %s", chain()))
	}
	if depth > MaxIncludeDepth {
		return fail(includef(nil, "includes nested deeper than %d: %s", MaxIncludeDepth, chain()))
	}
	info, err := st.fsys.Stat(path)
	if err != nil {
		return fail(includef(err, "read config"))
	}
	st.stack = append(st.stack, path)
	defer func() { st.stack = st.stack[:len(st.stack)-1] }()
	if !info.IsDir() {
		data, err := st.fsys.ReadFile(path)
		if err != nil {
			return fail(includef(err, "read config"))
		}
		return st.parseText(path, data, filepath.Dir(path), depth)
	}
	entries, err := st.fsys.ReadDir(path)
	if err != nil {
		return fail(includef(err, "read config directory"))
	}
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		child := filepath.Join(path, e.Name())
		wanted := strings.HasSuffix(e.Name(), ".cfg") || strings.HasSuffix(e.Name(), ".conf")
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			fi, err := st.fsys.Stat(child)
			if err != nil {
				if wanted {
					return fail(includef(err, "read config"))
				}
				continue
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			err = st.includePath(at, child, depth+1)
		case mode.IsRegular() && wanted:
			err = st.includePath(at, child, depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
