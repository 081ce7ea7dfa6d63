package bridge

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "anything/with/slashes", true},
		{"site-a-*", "site-a-01", true},
		{"site-a-*", "site-b-01", false},
		{"hostgroup_?", "hostgroup_x", true},
		{"hostgroup_?", "hostgroup_xy", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"**", "x", true},
		{"*x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaay", false},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestLoadAuthz(t *testing.T) {
	a, err := LoadAuthz("testdata/authz/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"worker queue allowed", a.AllowQueue("site-a-01", "hostgroup_site_a"), true},
		{"queue names keep their case", a.AllowQueue("site-a-01", "HOSTGROUP_SITE_A"), false},
		{"worker other queue denied", a.AllowQueue("site-a-01", "host"), false},
		{"other identity denied", a.AllowQueue("site-b-01", "service"), false},
		{"sender host allowed", a.AllowHost("ci-runner", "ci-web1"), true},
		{"sender ? glob", a.AllowHost("ci-runner", "build7"), true},
		{"sender other host denied", a.AllowHost("ci-runner", "db1"), false},
		{"worker is not a sender", a.AllowHost("site-a-01", "ci-web1"), false},
		{"admin role", a.HasRole("ops", RoleAdmin), true},
		{"no admin role", a.HasRole("site-a-01", RoleAdmin), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadAuthzErrors(t *testing.T) {
	tests := map[string]string{
		"unknown_key.yaml":           "queue",
		"bad_role.yaml":              `role "superuser"`,
		"worker_without_queues.yaml": "a worker rule needs queues",
		"sender_with_queues.yaml":    "queues apply to worker rules only",
		"empty_identity.yaml":        "identity is empty",
		"missing.yaml":               "missing.yaml",
		// identifiers: names a worker may use instead of its identity.
		"identifiers_on_sender.yaml":     "identifiers apply to worker rules only",
		"identifiers_on_admin.yaml":      "an admin rule takes no queues, hosts or identifiers",
		"identifiers_empty_pattern.yaml": "empty pattern",
		"identifiers_not_a_list.yaml":    "identifiers",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := LoadAuthz("testdata/authz/" + file)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to mention %q", err, want)
			}
		})
	}
}

func TestDefaultDenyAndAllowAll(t *testing.T) {
	var none Authz
	if none.AllowQueue("x", "service") || none.AllowHost("x", "h") || none.HasRole("x", RoleAdmin) {
		t.Fatal("an empty policy must deny everything")
	}
	all := AllowAll()
	if err := all.Validate(); err != nil {
		t.Fatal(err)
	}
	if !all.AllowQueue("x", "hostgroup_y") || !all.AllowHost("x", "h") || !all.HasRole("x", RoleAdmin) {
		t.Fatal("AllowAll must allow everything")
	}
}

// TestAuthzIdentifiers: a worker's identifier is its certificate identity;
// another one only where a worker rule of that identity lists it.
func TestAuthzIdentifiers(t *testing.T) {
	a, err := LoadAuthz("testdata/authz/identifiers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		identity, identifier string
		want                 bool
	}{
		{"site-a", "", true},       // defaults to the identity
		{"site-a", "site-a", true}, // the identity itself
		{"site-a", "site-a-1", true},
		{"site-a", "site-a-", true},
		{"site-a", "legacy-a", true},
		{"site-a", "legacy-a2", false},
		{"site-a", "site-b", false},
		{"site-b", "site-b", true},
		{"site-b", "site-a-1", false}, // another identity's list does not count
		{"site-b", "site-b-1", false}, // no list: only the identity
		{"ops", "site-a-1", false},    // not a worker rule
	}
	for _, tt := range tests {
		if got := a.AllowIdentifier(tt.identity, tt.identifier); got != tt.want {
			t.Errorf("AllowIdentifier(%q, %q) = %v, want %v", tt.identity, tt.identifier, got, tt.want)
		}
	}
	if AllowAll().AllowIdentifier("site-a", "other") {
		t.Error("AllowAll lets any identity use any identifier; it should not")
	}
}

// TestContribAuthzSaysWhatItsCommentsSay: the example file's identifiers
// rule does what its comment says.
func TestContribAuthzSaysWhatItsCommentsSay(t *testing.T) {
	a, err := LoadAuthz("../contrib/authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !a.AllowIdentifier("site-b", "site-b-1") || !a.AllowQueue("site-b", "hostgroup_site_b") {
		t.Error("site-b's workers may not call themselves site-b-1")
	}
	if a.AllowIdentifier("site-b", "site-a-1") || a.AllowIdentifier("site-a-1", "site-a-2") {
		t.Error("an identifier no rule lists is allowed")
	}
}
