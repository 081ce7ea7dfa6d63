package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/certwatch"
)

// Default thresholds of the certificate checks: a month leaves time to
// find out why automatic renewal did not happen, a week is an emergency.
const (
	defaultCertWarn = "30d"
	defaultCertCrit = "7d"
)

// day is the unit of the certificate checks' texts and perfdata.
const day = 24 * time.Hour

// threshold is the value of -w or -c: a number of jobs for the queue
// checks, or a time left for the certificate checks (30d, 12h, or a plain
// number of days). It is checked against the mode only once the mode is
// known.
type threshold struct{ raw string }

func (v *threshold) String() string { return v.raw }
func (v *threshold) Type() string   { return "N|TIME" }

func (v *threshold) Set(s string) error {
	hasUnit := strings.ContainsFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' })
	if _, err := strconv.Atoi(s); err != nil {
		if !hasUnit {
			// pflag's own text for an integer flag, which -w was.
			return errors.New("must be an integer")
		}
		if _, err := parseTimeLeft(s); err != nil {
			return errors.New("must be an integer, or a time left such as 30d or 12h")
		}
	}
	v.raw = s
	return nil
}

// count is the value as a number of jobs.
func (v *threshold) count(flag string) (int, error) {
	n, err := strconv.Atoi(v.raw)
	if err != nil {
		return 0, fmt.Errorf("%s %s: a time left applies to --cert and --cert-of-server; queue thresholds are job counts", flag, v.raw)
	}
	return n, nil
}

// timeLeft is the value as a time left.
func (v *threshold) timeLeft(flag string) (time.Duration, error) {
	d, err := parseTimeLeft(v.raw)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flag, err)
	}
	return d, nil
}

// parseTimeLeft reads 30d, 1.5d, 12h, 90m or another Go duration; a plain
// integer is days, as with the usual certificate plugins.
func parseTimeLeft(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.Atoi(s); err == nil {
		if n > 100*365 {
			return 0, fmt.Errorf("time left %q: at most 36500 days", s)
		}
		d = time.Duration(n) * day
	} else if num, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f > 100*365 {
			return 0, fmt.Errorf("time left %q: want days (30d) or a duration (12h)", s)
		}
		d = time.Duration(f * float64(day))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("time left %q: want days (30d) or a duration (12h)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("time left %q: must not be negative", s)
	}
	return d, nil
}

// certCheck are the thresholds of a certificate check.
type certCheck struct {
	warn, crit time.Duration
}

// checkCertFile is `check --cert FILE`.
func checkCertFile(out io.Writer, file string, cc certCheck, now time.Time) int {
	cs, err := certs.ReadCertificates(file)
	if err != nil {
		fmt.Fprintf(out, "check_gearman UNKNOWN - cannot read certificate %s: %v\n", file, err)
		return stateUnknown
	}
	state, line := certReport(cs[0], "", now, cc)
	fmt.Fprint(out, line)
	return state
}

// checkCertOfServer is `check --cert-of-server --bridge ADDR`: it reads the
// certificate the bridge serves and, with caFile, verifies it as a client
// would.
func checkCertOfServer(ctx context.Context, out io.Writer, addr, caFile string, cc certCheck, now time.Time) int {
	var roots *x509.CertPool
	if caFile != "" {
		cas, err := certs.ReadCertificates(caFile)
		if err != nil {
			fmt.Fprintf(out, "check_gearman UNKNOWN - cannot read CA %s: %v\n", caFile, err)
			return stateUnknown
		}
		roots = x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
	}
	chain, err := servedCertificates(ctx, addr)
	if err != nil {
		if isTimeout(err) {
			return checkTimeout(out, addr)
		}
		fmt.Fprintf(out, "check_gearman CRITICAL - cannot read the certificate of %s: %v\n", addr, err)
		return stateCritical
	}
	of := " of " + addr
	if roots != nil {
		if err := verifyServed(chain, roots, addr, now); err != nil {
			role, id := certwatch.Labels(chain[0])
			fmt.Fprintf(out, "check_gearman CRITICAL - certificate %s (%s)%s does not verify against %s: %v\n", id, role, of, caFile, err)
			return stateCritical
		}
	}
	state, line := certReport(chain[0], of, now, cc)
	fmt.Fprint(out, line)
	return state
}

// servedCertificates dials addr and returns the certificate chain its TLS
// server presents. Nothing is verified here: the connection only reads the
// certificate (and the bridge drops it for lack of a client certificate).
func servedCertificates(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Only to read the certificate, which --tls-ca verifies
		// separately; nothing is sent over this connection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			return nil
		},
	}
	if net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	switch {
	case len(chain) > 0:
		return chain, nil // a refusal after the server's certificate does not matter
	case err != nil:
		return nil, err
	}
	return nil, errors.New("the server presented no certificate")
}

// verifyServed checks the served chain as a worker does: against roots,
// for the dialled host, and carrying the bridge role. Expiry is left to
// the thresholds, so the chain is verified at a time it is valid.
func verifyServed(chain []*x509.Certificate, roots *x509.CertPool, addr string, now time.Time) error {
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	at := now
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	host, _, _ := net.SplitHostPort(addr)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: host, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return err
	}
	role, name, err := certs.IdentityOf(leaf)
	if err != nil {
		return err
	}
	if role != certs.RoleBridge {
		return fmt.Errorf("it is the certificate of %s %q, not of a bridge", role, name)
	}
	return nil
}

// certReport is the plugin line for cert at now: its identity, when it
// expires, and the days left as perfdata.
func certReport(cert *x509.Certificate, of string, now time.Time, cc certCheck) (int, string) {
	role, id := certwatch.Labels(cert)
	left := cert.NotAfter.Sub(now)
	when := cert.NotAfter.UTC().Format("2006-01-02 15:04") + " UTC"
	state, text := stateOK, fmt.Sprintf("expires in %s (%s)", span(left), when)
	switch {
	case now.Before(cert.NotBefore):
		state = stateCritical
		text = fmt.Sprintf("is not valid before %s", cert.NotBefore.UTC().Format("2006-01-02 15:04")+" UTC")
	case left <= 0:
		state, text = stateCritical, fmt.Sprintf("expired %s ago (%s)", span(-left), when)
	case left < cc.crit:
		state = stateCritical
	case left < cc.warn:
		state = stateWarning
	}
	return state, fmt.Sprintf("check_gearman %s - certificate %s (%s)%s %s|expiry_days=%d;%s;%s\n",
		stateNames[state], id, role, of, text, int(left/day), days(cc.warn), days(cc.crit))
}

// span words a time span in whole days, hours or minutes.
func span(d time.Duration) string {
	n, unit := int(d/time.Minute), "minute"
	switch {
	case d >= day:
		n, unit = int(d/day), "day"
	case d >= time.Hour:
		n, unit = int(d/time.Hour), "hour"
	}
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// days is d in days for perfdata: at most six decimals, no trailing zeros.
func days(d time.Duration) string {
	s := strconv.FormatFloat(d.Hours()/24, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
