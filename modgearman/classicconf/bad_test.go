package classicconf

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadFiles parses one file per kind of bad input and checks that the
// error names the right file, line and key.
func TestBadFiles(t *testing.T) {
	bad := func(name string) string { return filepath.Join("testdata", "bad", name) }
	tests := []struct {
		file     string
		errFile  string // default: file
		line     int
		key      string
		kind     error
		contains string
	}{
		{file: "unknown_key.conf", line: 4, key: "no_such_option", kind: ErrUnknownKey},
		{file: "separator_hint.conf", line: 4, key: "job-timeout", kind: ErrUnknownKey, contains: `did you mean "job_timeout"`},
		{file: "bad_bool.conf", line: 4, key: "encryption", kind: ErrInvalidValue, contains: `"maybe" is not a boolean`},
		{file: "bad_int.conf", line: 4, key: "debug", kind: ErrInvalidValue, contains: "not an integer"},
		{file: "out_of_range.conf", line: 4, key: "orphan_return", kind: ErrInvalidValue,
			contains: bad("out_of_range.conf") + `:4: key "orphan_return": value "7" out of range 0..3`},
		{file: "bad_server_port.conf", line: 4, key: "server", kind: ErrInvalidValue, contains: `invalid port "473000"`},
		{file: "bad_server_host.conf", line: 4, key: "server", kind: ErrInvalidValue, contains: "invalid host name"},
		{file: "bad_server_ipv6.conf", line: 4, key: "server", kind: ErrInvalidValue, contains: "IPv6"},
		{file: "missing_equals.conf", line: 4, key: "hosts yes", kind: ErrSyntax, contains: `missing "="`},
		{file: "empty_key.conf", line: 4, key: "", kind: ErrSyntax, contains: "empty key"},
		{file: "dashed_needs_value.conf", line: 4, key: "debug", kind: ErrSyntax, contains: "option needs a value"},
		{file: "dashes_only.conf", line: 4, key: "", kind: ErrSyntax, contains: "empty key"},
		{file: "dashed_space.conf", line: 4, key: "- hosts", kind: ErrSyntax, contains: "white space after the dashes"},
		{file: "dashed_unknown_key.conf", line: 4, key: "no_such_option", kind: ErrUnknownKey},
		{file: "group_too_long.conf", line: 4, key: "hostgroups", kind: ErrInvalidValue, contains: "longer than 50"},
		{file: "bad_export.conf", line: 4, key: "export", kind: ErrInvalidValue, contains: `callback "LOG_DATA"`},
		{file: "bad_export_shape.conf", line: 4, key: "export", kind: ErrInvalidValue, contains: "<queue>:<returncode>"},
		{file: "bad_perfdata_mode.conf", line: 4, key: "perfdata_mode", kind: ErrInvalidValue, contains: "out of range 1..2"},
		{file: "perfdata_bool_queue.conf", line: 4, key: "perfdata", kind: ErrInvalidValue, contains: "reads as a boolean"},
		{file: "bad_logmode.conf", line: 4, key: "logmode", kind: ErrInvalidValue, contains: "want one of"},
		{file: "bad_float.conf", line: 4, key: "load_limit1", kind: ErrInvalidValue, contains: "not a number"},
		{file: "empty_result_queue.conf", line: 4, key: "result_queue", kind: ErrInvalidValue, contains: "empty value"},
		{file: "bad_worker_name.conf", line: 4, key: "worker_name_in_result", kind: ErrInvalidValue},
		{file: "returncode_range.conf", line: 4, key: "returncode", kind: ErrInvalidValue, contains: "out of range 0..3"},
		{file: "empty_delimiter.conf", line: 4, key: "delimiter", kind: ErrInvalidValue},
		{file: "inline_comment.conf", line: 4, key: "max-worker", kind: ErrInvalidValue, contains: "does not start a comment"},
		{file: "include_missing.conf", line: 4, key: "include", kind: fs.ErrNotExist},
		{file: "include_empty.conf", line: 4, key: "config", kind: ErrInclude, contains: "empty include path"},
		{file: "self_include.conf", line: 4, key: "configfile", kind: ErrInclude,
			contains: "include cycle: " + bad("self_include.conf") + " -> " + bad("self_include.conf")},
		{file: "nested_error.conf", errFile: bad("inc/bad_inner.cfg"), line: 3, key: "min-worker", kind: ErrInvalidValue},
		{file: "cycle/a.conf", errFile: bad("cycle/b.conf"), line: 4, key: "config", kind: ErrInclude,
			contains: bad("cycle/a.conf") + " -> " + bad("cycle/b.conf") + " -> " + bad("cycle/a.conf")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := ParseFile(bad(tt.file))
			if err == nil {
				t.Fatal("parse succeeded, want error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			wantFile := tt.errFile
			if wantFile == "" {
				wantFile = bad(tt.file)
			}
			if e.File != wantFile || e.Line != tt.line || e.Key != tt.key {
				t.Errorf("error at %s:%d key %q, want %s:%d key %q (%v)", e.File, e.Line, e.Key, wantFile, tt.line, tt.key, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
			if !strings.HasPrefix(err.Error(), wantFile+":") {
				t.Errorf("error %q does not start with the file name", err)
			}
			assertEqual(t, "config after error", cfg, Config{})
		})
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile("testdata/does-not-exist.conf")
	var e *Error
	if !errors.As(err, &e) || e.File != "testdata/does-not-exist.conf" || e.Line != 0 || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist *Error for the file", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "a.conf", Line: 3, Key: "debug", Err: errors.New("boom")}, `a.conf:3: key "debug": boom`},
		{&Error{File: "a.conf", Line: 3, Err: errors.New("boom")}, `a.conf:3: boom`},
		{&Error{File: "a.conf", Err: errors.New("boom")}, `a.conf: boom`},
		{&Error{Key: "debug", Err: errors.New("boom")}, `key "debug": boom`},
	}
	for _, tt := range tests {
		assertEqual(t, "Error()", tt.err.Error(), tt.want)
	}
}
