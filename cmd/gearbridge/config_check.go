package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// Kinds of file `config check` knows.
const (
	kindBridge  = "bridge"  // YAML configuration of gearbridge bridge
	kindWorker  = "worker"  // YAML configuration of gearbridge worker
	kindClassic = "classic" // classic Mod-Gearman key=value file or include directory
	kindAuthz   = "authz"   // the bridge's authorization rules
	kindCert    = "cert"    // a PEM certificate (chain)
	kindKey     = "key"     // a PEM private key
)

var configKinds = []string{"auto", kindBridge, kindWorker, kindClassic, kindAuthz, kindCert, kindKey}

// certSoon is when config check starts to warn about a certificate's
// expiry: the default WARNING of check --cert.
const certSoon = 30 * day

// configCheckOptions are the flags of config check.
type configCheckOptions struct {
	kind string
	dial string // the address clients dial, for a bridge certificate's SAN
	role string // the role a certificate must carry
	// The authz question.
	identity, askRole, queue, host, identifier string
}

// errConfigProblems ends config check with exit 1 after the findings were
// printed.
var errConfigProblems = errors.New("problems found")

func newConfigCmd(s streams, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check configuration, authorization and TLS files",
	}
	cmd.AddCommand(newConfigCheckCmd(s, g))
	return cmd
}

func newConfigCheckCmd(s streams, g *globals) *cobra.Command {
	var o configCheckOptions
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate files without starting anything",
		Long: `Validate any of gearbridge's files without starting anything. The kind of
each file is detected from its content, or given with --kind:

  bridge, worker  YAML configuration (strict: unknown keys and bad values are errors)
  classic         a classic mod_gearman_worker.conf / NEB .conf (or an include
                  directory): parsed as the worker parses it, with the options
                  gearbridge accepts but does not act on listed, each with why
  authz           the bridge's authorization rules
  cert            a certificate: its gearbridge role and identity, expiry, the
                  chain to --tls-ca, and with --dial HOST[:PORT] whether clients
                  dialling that address accept it (bridge certificates)
  key             a private key: parses, and is readable by its owner only;
                  NAME.crt and NAME.key given together must belong together

Questions to an authz file: --identity X --role worker --queue Z ("may the
worker identity X take jobs from queue Z?"), --identity X --role sender
--host H, --identity X --role worker --identifier I, --identity X --role
admin. The answer is printed; exit 0 means allowed, 1 denied.

Exit codes: 0 every file is fine, 1 a problem was found, 2 usage errors.

  gearbridge config check /etc/gearbridge/bridge.yaml /etc/gearbridge/authz.yaml
  gearbridge config check --tls-ca ca.crt --dial bridge.example.com:4731 bridge.crt
  gearbridge config check authz.yaml --identity site-a --role worker --queue hostgroup_site_a`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, files []string) error {
			if !slices.Contains(configKinds, o.kind) {
				return usageError(fmt.Errorf("config check: --kind %q: want one of %s", o.kind, strings.Join(configKinds, ", ")))
			}
			if o.identity != "" && o.askRole == "" || o.identity == "" && (o.askRole != "" || o.queue != "" || o.host != "" || o.identifier != "") {
				return usageError(errors.New("config check: an authz question needs --identity and --role (and --queue, --host or --identifier)"))
			}
			bad := false
			for _, f := range files {
				if !checkConfigFile(s.out, f, g, o, time.Now()) {
					bad = true
				}
			}
			if !checkPairs(s.out, files) {
				bad = true
			}
			if bad {
				return &exitError{code: exitFailure, err: errConfigProblems}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kind, "kind", "auto", "kind of the files: "+strings.Join(configKinds, "|"))
	f.StringVar(&o.dial, "dial", "", "cert: the `HOST[:PORT]` clients dial; the certificate must name it")
	f.StringVar(&o.role, "cert-role", "", "cert: the role the certificate must carry (worker, sender, admin, bridge)")
	f.StringVar(&o.identity, "identity", "", "authz question: the certificate identity asking")
	f.StringVar(&o.askRole, "role", "", "authz question: its role (worker, sender, admin)")
	f.StringVar(&o.queue, "queue", "", "authz question: may it take jobs from this queue?")
	f.StringVar(&o.host, "host", "", "authz question: may it send results for this host?")
	f.StringVar(&o.identifier, "identifier-name", "", "authz question: may a worker of it call itself this?")
	return cmd
}

// checkConfigFile checks one file and prints what it finds; it reports
// whether the file is fine.
func checkConfigFile(out io.Writer, file string, g *globals, o configCheckOptions, now time.Time) bool {
	kind := o.kind
	if kind == "auto" {
		var err error
		if kind, err = detectKind(file); err != nil {
			fmt.Fprintf(out, "%s: ERROR %v\n", file, err)
			return false
		}
	}
	var notes []string
	var err error
	switch kind {
	case kindBridge:
		notes, err = checkBridgeYAML(file)
	case kindWorker:
		notes, err = checkWorkerYAML(file)
	case kindClassic:
		notes, err = checkClassic(file)
	case kindAuthz:
		notes, err = checkAuthz(file, o)
	case kindCert:
		notes, err = checkTLSCertFile(file, g.tlsCA, o, now)
	case kindKey:
		notes, err = checkKeyFile(file)
	}
	if err != nil {
		fmt.Fprintf(out, "%s: ERROR (%s) %v\n", file, kind, err)
		for _, n := range notes {
			fmt.Fprintf(out, "  %s\n", n)
		}
		return false
	}
	fmt.Fprintf(out, "%s: OK (%s)\n", file, kind)
	for _, n := range notes {
		fmt.Fprintf(out, "  %s\n", n)
	}
	return true
}

// detectKind tells the kind of a file from its content: PEM blocks, a
// classic key=value file, or YAML — the authz rules (a "rules" list), or a
// bridge or worker configuration by the keys only one of them has.
func detectKind(file string) (string, error) {
	if fi, err := os.Stat(file); err != nil {
		return "", err
	} else if fi.IsDir() {
		return kindClassic, nil // a classic include directory
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	switch {
	case bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")):
		return kindCert, nil
	case bytes.Contains(data, []byte("PRIVATE KEY-----")):
		return kindKey, nil
	}
	if classic, found := classicconf.Sniff(data); found && classic {
		return kindClassic, nil
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("neither a classic key=value file, YAML nor PEM (YAML: %v); give --kind", err)
	}
	if _, ok := doc["rules"]; ok {
		return kindAuthz, nil
	}
	bridgeKeys, workerKeys := yamlKeys(bridgeOptions{}), yamlKeys(workerOptions{})
	var onlyBridge, onlyWorker bool
	for k := range doc {
		inB, inW := slices.Contains(bridgeKeys, k), slices.Contains(workerKeys, k)
		onlyBridge = onlyBridge || inB && !inW
		onlyWorker = onlyWorker || inW && !inB
	}
	switch {
	case onlyBridge && !onlyWorker:
		return kindBridge, nil
	case onlyWorker && !onlyBridge:
		return kindWorker, nil
	}
	return "", errors.New("cannot tell whether this YAML configures the bridge or the worker; give --kind bridge or --kind worker")
}

// yamlKeys lists the mapstructure keys of a configuration struct.
func yamlKeys(v any) []string {
	var keys []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		if k, _, _ := strings.Cut(rt.Field(i).Tag.Get("mapstructure"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

func checkBridgeYAML(file string) ([]string, error) {
	opts, err := loadBridgeOptions(nil, file)
	if err != nil {
		return nil, err
	}
	cfg, err := opts.bridgeConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var notes []string
	if opts.Authz == "" {
		notes = append(notes, "no authz file: every identity is denied")
	}
	if opts.CertsDir == "" && (opts.TLSCA == "" || opts.TLSCert == "" || opts.TLSKey == "") {
		notes = append(notes, "tls-ca, tls-cert and tls-key (or certs-dir) must still come from flags or GEARBRIDGE_* variables")
	}
	return notes, nil
}

func checkWorkerYAML(file string) ([]string, error) {
	opts, notes, err := loadWorkerOptions(nil, file)
	if err != nil {
		return nil, err
	}
	opts.useStateDir()
	if opts.Transport == transportBridge && opts.StateDir == "" && (opts.TLSCA == "" || opts.TLSCert == "" || opts.TLSKey == "") {
		// Often given by flags or GEARBRIDGE_* variables: noted, and the
		// rest is checked as if they were there.
		notes = append(notes, "tls-ca, tls-cert and tls-key (or state-dir) must still come from flags or GEARBRIDGE_* variables")
		opts.TLSCA, opts.TLSCert, opts.TLSKey = cmp.Or(opts.TLSCA, "-"), cmp.Or(opts.TLSCert, "-"), cmp.Or(opts.TLSKey, "-")
	}
	if _, err := opts.workerConfig(os.Hostname); err != nil {
		return notes, err
	}
	return notes, nil
}

// checkClassic parses a classic file as the worker does and lists what it
// does not act on.
func checkClassic(file string) ([]string, error) {
	cc, err := classicconf.ParseFile(file)
	if err != nil {
		return nil, err
	}
	notes := append([]string(nil), cc.Warnings...)
	o := defaultWorkerOptions()
	o.Transport = transportGearman
	if line := o.unusedClassicLine(classicconf.ChangedOptions(cc)); line != "" {
		for part := range strings.SplitSeq(line, "; ") {
			notes = append(notes, "ignored by gearbridge worker: "+part)
		}
	}
	return notes, nil
}

// checkAuthz loads the rules and answers the question, if one was asked.
func checkAuthz(file string, o configCheckOptions) ([]string, error) {
	az, err := bridge.LoadAuthz(file)
	if err != nil {
		return nil, err
	}
	notes := []string{fmt.Sprintf("%d rule(s)", len(az.Rules))}
	if o.identity == "" {
		return notes, nil
	}
	var allowed bool
	var question string
	switch role := bridge.Role(o.askRole); {
	case role == bridge.RoleWorker && o.queue != "":
		allowed, question = az.AllowQueue(o.identity, o.queue), fmt.Sprintf("worker %q take jobs from queue %q", o.identity, o.queue)
	case role == bridge.RoleWorker && o.identifier != "":
		allowed, question = az.AllowIdentifier(o.identity, o.identifier), fmt.Sprintf("worker %q call itself %q", o.identity, o.identifier)
	case role == bridge.RoleSender && o.host != "":
		allowed, question = az.AllowHost(o.identity, o.host), fmt.Sprintf("sender %q send results for host %q", o.identity, o.host)
	case role == bridge.RoleAdmin || o.queue == "" && o.host == "" && o.identifier == "":
		allowed, question = az.HasRole(o.identity, role), fmt.Sprintf("%q act as %s", o.identity, role)
	default:
		return notes, fmt.Errorf("question: --queue and --identifier-name go with --role worker, --host with --role sender")
	}
	if allowed {
		return append(notes, "allowed: may "+question), nil
	}
	return notes, fmt.Errorf("denied: may %s? no rule allows it", question)
}

// checkTLSCertFile checks a certificate file as the peers using it will:
// identity and role, validity now, the chain to caFile, and the name
// clients dial.
func checkTLSCertFile(file, caFile string, o configCheckOptions, now time.Time) ([]string, error) {
	cs, err := certs.ReadCertificates(file)
	if err != nil {
		return nil, err
	}
	leaf := cs[0]
	var notes []string
	var problems []string
	role, name, idErr := certs.IdentityOf(leaf)
	if idErr != nil {
		problems = append(problems, idErr.Error())
	} else {
		notes = append(notes, fmt.Sprintf("identity %q, role %s, serial %s", name, role, certs.SerialOf(leaf)))
	}
	if o.role != "" && string(role) != o.role {
		problems = append(problems, fmt.Sprintf("role is %q, want %q", role, o.role))
	}
	switch {
	case now.After(leaf.NotAfter):
		problems = append(problems, fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(leaf.NotBefore):
		problems = append(problems, fmt.Sprintf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339)))
	case leaf.NotAfter.Sub(now) < certSoon:
		notes = append(notes, fmt.Sprintf("WARNING: expires in %s (%s)", roughly(leaf.NotAfter.Sub(now)), leaf.NotAfter.UTC().Format(time.RFC3339)))
	default:
		notes = append(notes, fmt.Sprintf("valid until %s (%s left)", leaf.NotAfter.UTC().Format(time.RFC3339), roughly(leaf.NotAfter.Sub(now))))
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses) > 0 {
		var sans []string
		sans = append(sans, leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			sans = append(sans, ip.String())
		}
		notes = append(notes, "names: "+strings.Join(sans, ", "))
	}
	usage := x509.ExtKeyUsageClientAuth
	if role == certs.RoleBridge {
		usage = x509.ExtKeyUsageServerAuth
	}
	if caFile == "" {
		notes = append(notes, "chain not checked: give --tls-ca")
	} else if cas, err := certs.ReadCertificates(caFile); err != nil {
		problems = append(problems, fmt.Sprintf("CA %s: %v", caFile, err))
	} else {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
		for _, c := range cs[1:] {
			inter.AddCert(c)
		}
		// The chain is checked as of a moment the certificate is valid,
		// so that an expired one is reported once, as expired.
		at := now
		if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			at = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			problems = append(problems, fmt.Sprintf("chain to %s: %v", caFile, err))
		} else {
			notes = append(notes, "chains to "+caFile)
		}
	}
	if o.dial != "" {
		host := o.dial
		if h, _, err := net.SplitHostPort(o.dial); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if role != certs.RoleBridge && idErr == nil {
			problems = append(problems, fmt.Sprintf("--dial: a %s certificate is not served to clients; only the bridge's is", role))
		} else if err := leaf.VerifyHostname(host); err != nil {
			problems = append(problems, fmt.Sprintf("clients dialling %s refuse it: %v", o.dial, err))
		} else {
			notes = append(notes, "clients dialling "+o.dial+" accept its name")
		}
	} else if role == certs.RoleBridge {
		notes = append(notes, "the name clients dial is not checked: give --dial HOST[:PORT]")
	}
	if len(problems) > 0 {
		return notes, errors.New(strings.Join(problems, "; "))
	}
	return notes, nil
}

// checkPairs checks that a certificate NAME.crt and a key NAME.key given
// together belong together, as the bridge or a worker loading them needs.
func checkPairs(out io.Writer, files []string) bool {
	ok := true
	for _, crt := range files {
		base, found := strings.CutSuffix(crt, ".crt")
		if !found || !slices.Contains(files, base+".key") {
			continue
		}
		if _, err := tls.LoadX509KeyPair(crt, base+".key"); err != nil {
			fmt.Fprintf(out, "%s + %s: ERROR (pair) %v\n", crt, base+".key", err)
			ok = false
			continue
		}
		fmt.Fprintf(out, "%s + %s: OK (pair)\n", crt, base+".key")
	}
	return ok
}

// checkKeyFile checks that a private key parses and that only its owner
// can read it.
func checkKeyFile(file string) ([]string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return nil, errors.New("no PEM private key found")
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
		if _, ecErr := x509.ParseECPrivateKey(b.Bytes); ecErr != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o: a private key must be readable by its owner only (chmod 600)", fi.Mode().Perm())
	}
	return nil, nil
}
