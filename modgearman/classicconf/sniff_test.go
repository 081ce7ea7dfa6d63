package classicconf

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSniff tells classic files from YAML by their first option line, so a
// classic file is recognised whatever its name.
func TestSniff(t *testing.T) {
	tests := []struct {
		name           string
		text           string
		classic, found bool
	}{
		{"key=value", "server=localhost:4730\n", true, true},
		{"after comments and blank lines", "# worker\n\n   # more\n\thosts = yes\n", true, true},
		{"upper case key", "Encryption=no\n", true, true},
		{"include", "config=/etc/mod_gearman/conf.d\n", true, true},
		{"--key=value", "--server=gm1\n", true, true},
		{"-key=value", "-debug=1\n", true, true},
		{"bare --flag", "--hosts\nservices=yes\n", true, true},
		{"byte order mark and CRLF", "\xef\xbb\xbfdebug=1\r\n", true, true},
		{"YAML mapping", "server: [localhost:4730]\n", false, true},
		{"YAML value with =", "bridge: host?a=b\nhosts: yes\n", false, true},
		{"YAML document marker", "---\nservices: yes\n", false, true},
		{"YAML list", "- hosts\n", false, true},
		{"YAML quoted key", "\"hosts\": yes\n", false, true},
		{"YAML flow mapping", "{services: yes}\n", false, true},
		{"YAML after a comment with =", "# key=value is classic\nservices: yes\n", false, true},
		{"a bare word", "hosts\n", false, true},
		{"empty", "", false, false},
		{"only comments and blank lines", "# nothing here\n\n  \n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			classic, found := Sniff([]byte(tt.text))
			if classic != tt.classic || found != tt.found {
				t.Errorf("Sniff(%q) = %v, %v; want %v, %v", tt.text, classic, found, tt.classic, tt.found)
			}
		})
	}
}

// TestSniffSampleFiles: every good sample file is recognised as classic.
func TestSniffSampleFiles(t *testing.T) {
	for _, name := range []string{"mod_gearman_neb.conf", "mod_gearman_worker.conf", "send_gearman.conf", "dashed.conf", "conf.d/10-groups.cfg"} {
		data, err := os.ReadFile(filepath.Join("testdata", "good", name))
		if err != nil {
			t.Fatal(err)
		}
		if classic, found := Sniff(data); !classic || !found {
			t.Errorf("%s: Sniff = %v, %v; want classic", name, classic, found)
		}
	}
}
