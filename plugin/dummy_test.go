package plugin

import (
	"path/filepath"
	"testing"
)

func TestInternalDummy(t *testing.T) {
	t.Parallel()
	const dummy = "/usr/lib/nagios/plugins/check_dummy"
	tests := []struct {
		line    string
		handled bool
		rc      int
		out     string
	}{
		{line: dummy + " 0 'test output'", handled: true, rc: 0, out: "OK: test output"},
		{line: dummy + " 0 test", handled: true, rc: 0, out: "OK: test"},
		{line: dummy + " 1 \"disk almost full\"", handled: true, rc: 1, out: "WARNING: disk almost full"},
		{line: dummy + " 2 down", handled: true, rc: 2, out: "CRITICAL: down"},
		{line: dummy + " 3 what", handled: true, rc: 3, out: "UNKNOWN: what"},
		{line: dummy + " 0", handled: true, rc: 0, out: "OK"},
		{line: dummy + " 2 first second", handled: true, rc: 2, out: "CRITICAL: first"},
		{line: dummy + " 0 'ok|time=1s;;;0'", handled: true, rc: 0, out: "OK: ok|time=1s;;;0"},
		{line: "FOO=bar " + dummy + " 0 env", handled: true, rc: 0, out: "OK: env"},
		{line: "$USER1$/check_dummy 0 x", handled: false},
		{line: dummy + " 4 bad", handled: true, rc: 3, out: "UNKNOWN: Status 4 is not a supported error state"},
		{line: dummy + " x bad", handled: true, rc: 3, out: "UNKNOWN: Status x is not a supported error state"},
		{line: dummy, handled: false},
		{line: dummy + " -V", handled: false},
		{line: dummy + " -1 neg", handled: false},
		{line: dummy + " 0 $(id)", handled: false},
		{line: dummy + " 0 \"$HOME\"", handled: false},
		{line: dummy + " 0 ok; rm -rf /", handled: false},
		{line: "/usr/lib/nagios/plugins/check_dummy2 0 x", handled: false},
		{line: "check_dummy 0 x", handled: false},
		{line: "/bin/true", handled: false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			res, ok := InternalDummy(tt.line)
			if ok != tt.handled {
				t.Fatalf("InternalDummy(%q) handled = %v, want %v", tt.line, ok, tt.handled)
			}
			if !ok {
				return
			}
			if res.ReturnCode != tt.rc || res.Output != tt.out || !res.ExitedOK || res.StartTime.IsZero() {
				t.Errorf("InternalDummy(%q) = %+v, want rc %d %q", tt.line, res, tt.rc, tt.out)
			}
		})
	}
}

func TestRunInternalDummy(t *testing.T) {
	t.Parallel()
	// A check_dummy that does not exist: only the internal one can answer.
	line := filepath.Join(t.TempDir(), "check_dummy") + " 1 'internal answer'"

	opt := testOptions()
	if res := Run(t.Context(), line, opt); res.ReturnCode != 1 || res.Output != "WARNING: internal answer" {
		t.Errorf("Run with internal check_dummy = rc %d %q", res.ReturnCode, res.Output)
	}
	opt.InternalCheckDummy = false
	res := Run(t.Context(), line, opt)
	if res.ReturnCode != 3 || res.Output != notFoundText(testID) {
		t.Errorf("Run without internal check_dummy = rc %d %q, want the not-found text", res.ReturnCode, res.Output)
	}
}
