package plugin

import (
	"errors"
	"testing"
)

func TestCheckRestricted(t *testing.T) {
	t.Parallel()
	prefixes := []string{"/usr/lib/nagios/plugins", "/opt/checks/"}
	tests := []struct {
		name  string
		line  string
		chars string
		ok    bool
	}{
		{name: "allowed", line: "/usr/lib/nagios/plugins/check_ping -H host", ok: true},
		{name: "leading blanks", line: " \t/opt/checks/check_x", ok: true},
		{name: "tab after command", line: "/opt/checks/check_x\t-v", ok: true},
		{name: "prefix with trailing slash", line: "/opt/checks/sub/check_y", ok: true},
		{name: "the prefix itself", line: "/opt/checks", ok: true},
		{name: "relative", line: "./check_ping"},
		{name: "bare name", line: "check_ping"},
		{name: "empty", line: "   "},
		{name: "other prefix", line: "/bin/sh -c id"},
		{name: "sibling directory", line: "/usr/lib/nagios/plugins-evil/check_x"},
		{name: "dot-dot", line: "/usr/lib/nagios/plugins/../../../../bin/sh"},
		{name: "glob in command", line: "/usr/lib/nagios/plugins/.*/sh", chars: "$"},
		{name: "quoted command", line: "/usr/lib/nagios/plugins/'..'/x", chars: "$"},
		{name: "env prefix", line: "LD_PRELOAD=/tmp/x.so /usr/lib/nagios/plugins/check_x"},
		{name: "default forbids quote", line: "/usr/lib/nagios/plugins/check_x 'a'"},
		{name: "default forbids pipe", line: "/usr/lib/nagios/plugins/check_x | /bin/sh"},
		{name: "default forbids backtick", line: "/usr/lib/nagios/plugins/check_x `id`"},
		{name: "custom set allows quote", line: "/usr/lib/nagios/plugins/check_x 'a b'", chars: "$", ok: true},
		{name: "custom set forbids its own", line: "/usr/lib/nagios/plugins/check_x %", chars: "%"},
		{name: "newline always forbidden", line: "/usr/lib/nagios/plugins/check_x\n/bin/id", chars: "$"},
		{name: "NUL always forbidden", line: "/usr/lib/nagios/plugins/check_x\x00", chars: "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chars := tt.chars
			if chars == "" {
				chars = DefaultRestrictCommandCharacters
			}
			err := checkRestricted(tt.line, prefixes, chars)
			if (err == nil) != tt.ok {
				t.Errorf("checkRestricted(%q) = %v, want ok %v", tt.line, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrRestricted) {
				t.Errorf("checkRestricted(%q) = %v, want ErrRestricted", tt.line, err)
			}
		})
	}
	if err := checkRestricted("/anything/at/all", []string{"/"}, "$"); err != nil {
		t.Errorf("prefix / rejected an absolute path: %v", err)
	}
}
