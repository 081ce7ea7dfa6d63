package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseAuthz feeds arbitrary bytes to the authorization parser. It
// either returns rules that validate, or an error that names the file;
// nothing panics, and parsed rules answer queries: an identity may always
// use its own name as identifier, and a worker rule's literal identifiers.
//
// Seeds: the files of testdata/authz (good and bad), contrib/authz.yaml
// and testdata/fuzz/FuzzParseAuthz.
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
			if !a.AllowIdentifier(r.Identity, r.Identity) {
				t.Fatalf("identity %q may not use its own name as identifier", r.Identity)
			}
			for _, p := range r.Identifiers {
				if r.Role == RoleWorker && !a.AllowIdentifier(r.Identity, p) {
					t.Fatalf("identity %q may not use the identifier %q its rule lists", r.Identity, p)
				}
			}
		}
	})
}
