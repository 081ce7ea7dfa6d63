// Package layout tests the dependency direction between gearbridge's
// packages, as the table in the style guide draws it.
package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/gearbridge/gearbridge"

// forbidden maps a package (prefix) to the module packages it must not import.
var forbidden = map[string][]string{
	"gearman":    {"modgearman", "bridge", "worker", "sender", "neb", "certs", "plugin", "proto", "cmd"},
	"modgearman": {"gearman", "bridge", "worker", "sender", "neb", "certs", "plugin", "proto", "cmd"},
	"plugin":     {"gearman", "bridge", "worker", "sender", "neb", "certs", "proto", "cmd", "modgearman"},
	"certs":      {"gearman", "bridge", "worker", "sender", "neb", "plugin", "proto", "cmd", "modgearman"},
	"neb":        {"bridge", "worker", "sender", "cmd"},
	"worker":     {"bridge", "sender", "neb", "cmd"},
	"sender":     {"bridge", "worker", "neb", "cmd"},
	"bridge":     {"worker", "sender", "neb", "cmd"},
	"proto":      {"gearman", "modgearman", "bridge", "worker", "sender", "neb", "certs", "plugin", "cmd"},
}

// externalForbidden lists third-party imports a package must not have.
var externalForbidden = map[string][]string{
	"certs":      {"google.golang.org/grpc"},
	"plugin":     {"google.golang.org/grpc"},
	"gearman":    {"google.golang.org/grpc", "github.com/mikespook/gearman-go"},
	"modgearman": {"google.golang.org/grpc"},
}

func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		for owner, bad := range forbidden {
			if pkg != owner && !strings.HasPrefix(pkg, owner+"/") {
				continue
			}
			checked++
			for _, dep := range fields[1:] {
				d := strings.TrimPrefix(dep, module+"/")
				if d == dep {
					continue
				}
				for _, b := range bad {
					if d == b || strings.HasPrefix(d, b+"/") {
						t.Errorf("%s imports %s, which the layout forbids", pkg, dep)
					}
				}
			}
			for _, dep := range fields[1:] {
				for _, b := range externalForbidden[owner] {
					if dep == b || strings.HasPrefix(dep, b+"/") {
						t.Errorf("%s imports %s, which the layout forbids", pkg, dep)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package of the layout table was found; the test checks nothing")
	}
}
