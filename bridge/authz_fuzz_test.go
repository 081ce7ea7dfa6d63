package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseAuthz feeds arbitrary bytes to the authorization parser. It
// either returns rules that validate, or an error that names the file;
// nothing panics, and parsed rules answer queries.
//
// Seeds: the files of testdata/authz (good and bad) and contrib/authz.yaml.
func FuzzParseAuthz(f *testing.F) {
	files, err := filepath.Glob("testdata/authz/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range append(files, "../contrib/authz.yaml") {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAuthz(data, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed rules do not validate: %v", err)
		}
		for _, r := range a.Rules {
			a.HasRole(r.Identity, r.Role)
			a.AllowQueue(r.Identity, "service")
			a.AllowHost(r.Identity, "web1")
		}
	})
}
