package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// Role is what an identity may do at the bridge.
type Role string

// Roles known to the authorization file.
const (
	RoleWorker Role = "worker"
	RoleSender Role = "sender"
	RoleAdmin  Role = "admin"
)

// Rule allows identities matching Identity (a glob: `*` matches any run of
// characters, `?` one character) to act in Role. Workers are limited to
// Queues, senders to Hosts (both globs).
//
// A worker's identifier (its name in status queues, results and logs) is
// its certificate identity. Identifiers (globs) lets a worker rule allow
// other identifiers for the identities it matches, for example one
// certificate for a site whose workers call themselves site-a-1,
// site-a-2, ...
type Rule struct {
	Identity    string   `mapstructure:"identity"`
	Role        Role     `mapstructure:"role"`
	Queues      []string `mapstructure:"queues"`
	Hosts       []string `mapstructure:"hosts"`
	Identifiers []string `mapstructure:"identifiers"`
}

// Authz is a list of allow rules. Anything no rule allows is denied.
type Authz struct {
	Rules []Rule `mapstructure:"rules"`
}

// LoadAuthz reads an authorization file. It is strict: unknown keys, unknown
// roles and empty patterns are errors naming the rule.
//
//	rules:
//	  - identity: "site-a-*"
//	    role: worker
//	    queues: ["hostgroup_site_a", "service"]
//	  - identity: "site-b"
//	    role: worker
//	    queues: ["hostgroup_site_b"]
//	    identifiers: ["site-b-*"]
//	  - identity: "ci-*"
//	    role: sender
//	    hosts: ["ci-*"]
//	  - identity: "ops"
//	    role: admin
func LoadAuthz(path string) (*Authz, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read authz file: %w", err)
	}
	return ParseAuthz(data, path)
}

// ParseAuthz parses the YAML of an authorization file; name says where it
// came from in errors. It is as strict as [LoadAuthz].
func ParseAuthz(data []byte, name string) (*Authz, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("authz file %s: %w", name, err)
	}
	var a Authz
	if err := v.UnmarshalExact(&a); err != nil {
		return nil, fmt.Errorf("authz file %s: %w", name, err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("authz file %s: %w", name, err)
	}
	return &a, nil
}

// AllowAll is the single-tenant policy: every identity may do everything.
func AllowAll() *Authz {
	return &Authz{Rules: []Rule{
		{Identity: "*", Role: RoleWorker, Queues: []string{"*"}},
		{Identity: "*", Role: RoleSender, Hosts: []string{"*"}},
		{Identity: "*", Role: RoleAdmin},
	}}
}

// Validate checks the rules without touching anything.
func (a *Authz) Validate() error {
	var errs []error
	for i, r := range a.Rules {
		where := fmt.Sprintf("rule %d (identity %q)", i+1, r.Identity)
		if r.Identity == "" {
			errs = append(errs, fmt.Errorf("%s: identity is empty (use \"*\" for any identity)", where))
		}
		switch r.Role {
		case RoleWorker:
			if len(r.Queues) == 0 {
				errs = append(errs, fmt.Errorf("%s: a worker rule needs queues", where))
			}
			if len(r.Hosts) != 0 {
				errs = append(errs, fmt.Errorf("%s: hosts apply to sender rules only", where))
			}
		case RoleSender:
			if len(r.Hosts) == 0 {
				errs = append(errs, fmt.Errorf("%s: a sender rule needs hosts", where))
			}
			if len(r.Queues) != 0 {
				errs = append(errs, fmt.Errorf("%s: queues apply to worker rules only", where))
			}
			if len(r.Identifiers) != 0 {
				errs = append(errs, fmt.Errorf("%s: identifiers apply to worker rules only", where))
			}
		case RoleAdmin:
			if len(r.Queues) != 0 || len(r.Hosts) != 0 || len(r.Identifiers) != 0 {
				errs = append(errs, fmt.Errorf("%s: an admin rule takes no queues, hosts or identifiers", where))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: role %q: want worker, sender or admin", where, r.Role))
		}
		for _, p := range slices.Concat(r.Queues, r.Hosts, r.Identifiers) {
			if p == "" {
				errs = append(errs, fmt.Errorf("%s: empty pattern", where))
			}
		}
	}
	return errors.Join(errs...)
}

// HasRole reports whether any rule gives identity the role.
func (a *Authz) HasRole(identity string, role Role) bool {
	for _, r := range a.Rules {
		if r.Role == role && Glob(r.Identity, identity) {
			return true
		}
	}
	return false
}

// AllowQueue reports whether identity may work on queue.
func (a *Authz) AllowQueue(identity, queue string) bool {
	return a.allow(identity, RoleWorker, queue, func(r Rule) []string { return r.Queues })
}

// AllowIdentifier reports whether a worker of identity may call itself
// identifier: its own identity (or no identifier, which defaults to it)
// always, another one only if a worker rule of identity lists it under
// identifiers.
func (a *Authz) AllowIdentifier(identity, identifier string) bool {
	if identifier == "" || identifier == identity {
		return true
	}
	return a.allow(identity, RoleWorker, identifier, func(r Rule) []string { return r.Identifiers })
}

// AllowHost reports whether identity may send results for host.
func (a *Authz) AllowHost(identity, host string) bool {
	return a.allow(identity, RoleSender, host, func(r Rule) []string { return r.Hosts })
}

func (a *Authz) allow(identity string, role Role, name string, patterns func(Rule) []string) bool {
	for _, r := range a.Rules {
		if r.Role != role || !Glob(r.Identity, identity) {
			continue
		}
		for _, p := range patterns(r) {
			if Glob(p, name) {
				return true
			}
		}
	}
	return false
}

// Glob matches name against pattern, where `*` matches any run of
// characters (including none) and `?` exactly one. Unlike path.Match, `/`
// is an ordinary character, so queue and host names need no escaping.
func Glob(pattern, name string) bool {
	// Iterative matcher with single-star backtracking: linear in practice,
	// never exponential.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	return strings.Trim(pattern[p:], "*") == ""
}
