package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gearbridge/gearbridge/certs"
)

func newCertsCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Manage the private CA and certificates",
		Long: `Manage the private CA and certificates.

Durations (--lifetime, --ttl, --expiring) take days as well as Go durations:
30d, 90d, 1d12h, 12h.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("certs: name a subcommand (init, issue, token, list, revoke or renew)"))
		},
	}
	cmd.AddCommand(newCertsInitCmd(s), newCertsIssueCmd(s), newCertsTokenCmd(s), newCertsListCmd(s),
		newCertsRevokeCmd(s), newCertsRenewCmd(s))
	return cmd
}

// daysValue is a duration flag that also takes days ("30d", "1d12h"), the
// unit certificate lifetimes are thought of in.
type daysValue time.Duration

var _ pflag.Value = (*daysValue)(nil)

func (d *daysValue) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = daysValue(v)
	return nil
}

func (d *daysValue) Type() string { return "duration" }

// String prints whole days as "30d" and the rest as time.Duration does.
func (d *daysValue) String() string {
	v := time.Duration(*d)
	const day = 24 * time.Hour
	if v == 0 || v%day != 0 {
		return v.String()
	}
	return strconv.FormatInt(int64(v/day), 10) + "d"
}

// daysFlag defines a duration flag that takes days.
func daysFlag(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*daysValue)(p), name, usage)
}

// maxDays keeps a number of days within time.Duration's range.
const maxDays = int64(1<<63-1) / int64(24*time.Hour)

// parseDays parses a Go duration that may start with a whole number of
// days: "30d", "1d12h", "-1d", "90m".
func parseDays(s string) (time.Duration, error) {
	rest, neg := s, false
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		rest, neg = r, true
	} else if r, ok := strings.CutPrefix(rest, "+"); ok {
		rest = r
	}
	daysPart, afterDays, hasDays := strings.Cut(rest, "d")
	if !hasDays {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseInt(daysPart, 10, 64)
	if err != nil || days < 0 || days > maxDays {
		return 0, fmt.Errorf("duration %q: want whole days before \"d\" (30d, 1d12h) or a Go duration (12h, 90m)", s)
	}
	d := time.Duration(days) * 24 * time.Hour
	if afterDays != "" {
		more, err := time.ParseDuration(afterDays)
		if err != nil || more < 0 || d+more < d {
			return 0, fmt.Errorf("duration %q: %q after the days is not a positive Go duration", s, afterDays)
		}
		d += more
	}
	if neg {
		d = -d
	}
	return d, nil
}

func newCertsInitCmd(s streams) *cobra.Command {
	var dir string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA (DIR/ca.crt, DIR/ca.key); an existing CA is never overwritten",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usageError(errors.New("certs init: --dir is required"))
			}
			ca, err := certs.InitCA(dir, certs.CAOptions{Lifetime: lifetime})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "created CA in %s\nCA fingerprint: %s\n", dir, ca.Fingerprint())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA `DIR`ectory")
	daysFlag(cmd.Flags(), &lifetime, "lifetime", 0, "CA lifetime, e.g. 3650d (default 10 years)")
	return cmd
}

func newCertsIssueCmd(s streams) *cobra.Command {
	var req certs.IssueRequest
	var dir, role string
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate and key (DIR/NAME.crt, DIR/NAME.key) for a bridge, worker, sender or admin",
		Long: `Issue a certificate and a new key, written as NAME.crt and NAME.key into the CA
directory or --out (created if missing).

NAME is the identity (what --authz rules match, what certs revoke takes) and the
file name: letters, digits, '.', '-' and '_', starting with a letter or digit,
at most 64 bytes. "ca" is reserved, and a name another role has is refused.
Existing files are replaced only with --force. A name revoked with certs revoke
is issued again only with --reenroll; its old certificates stay revoked.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" || req.Name == "" || role == "" {
				return usageError(errors.New("certs issue: --dir, --role and --name are required"))
			}
			req.Role = certs.Role(role)
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			var revoked bool
			if rv, err := ca.Revocations(); err == nil {
				ir, ok := rv.Identity(req.Role, req.Name)
				revoked = ok && ir.Disabled()
			}
			f, err := ca.IssueFiles(req)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "issued %s certificate for %q: %s, %s (serial %s, valid until %s)\n", req.Role, req.Name,
				f.CertFile, f.KeyFile, certs.SerialOf(f.Cert), f.Cert.NotAfter.UTC().Format(time.RFC3339))
			if revoked {
				fmt.Fprintf(s.out, "re-enrolled %s %q: its certificates from before the revocation stay revoked\n", req.Role, req.Name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&role, "role", "", "bridge|worker|sender|admin")
	f.StringVar(&req.Name, "name", "", "identity `NAME` (what --authz rules match) and file name")
	f.StringSliceVar(&req.SANs, "san", nil, "bridge only: DNS names and IPs workers dial (default NAME, localhost, 127.0.0.1, ::1)")
	daysFlag(f, &req.Lifetime, "lifetime", 0, "certificate lifetime, e.g. 30d (default 90d)")
	f.StringVar(&req.OutDir, "out", "", "write into `DIR` (created if missing) instead of the CA directory")
	f.BoolVar(&req.Force, "force", false, "replace an existing NAME.crt and NAME.key")
	f.BoolVar(&req.Reenroll, "reenroll", false, "issue for a name that was revoked (its old certificates stay revoked)")
	return cmd
}

func newCertsTokenCmd(s streams) *cobra.Command {
	var dir, role, name string
	var queues, hosts []string
	var ttl time.Duration
	var reenroll bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create a one-time enrollment token for a worker or sender",
		Long: `Create a one-time enrollment token. It is printed once, together with the CA
fingerprint the enrolling peer pins; the CA directory keeps only its SHA-256.
The token can be used once, until it expires (--ttl).

--queues (workers) or --hosts (senders) become an allow rule for NAME that the
bridge adds to its authorization rules at enrollment (kept in
DIR/enrolled-authz.json, merged with --authz). Without them the bridge's
--authz file must allow NAME.

NAME follows the rules of certs issue. A name revoked with certs revoke gets a
token only with --reenroll; tokens made before the revocation stay refused.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" || name == "" || role == "" {
				return usageError(errors.New("certs token: --dir, --role and --name are required"))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			spec := certs.TokenSpec{Role: certs.Role(role), Name: name, Queues: queues, Hosts: hosts}
			if err := spec.Validate(); err != nil {
				return usageError(err)
			}
			token, rec, err := ca.CreateToken(spec, ttl, reenroll)
			if errors.Is(err, certs.ErrRevoked) || errors.Is(err, certs.ErrNameTaken) || errors.Is(err, certs.ErrNameReserved) {
				return err
			}
			if err != nil {
				return usageError(err)
			}
			fmt.Fprintf(s.out, "token: %s\nCA fingerprint: %s\nexpires: %s\n", token, ca.Fingerprint(), rec.ExpiresAt.Format(time.RFC3339))
			fmt.Fprintf(s.out, "enroll with: gearbridge %s enroll --bridge HOST:PORT --token %s --ca-fingerprint %s --state-dir DIR\n",
				map[certs.Role]string{certs.RoleWorker: "worker", certs.RoleSender: "send"}[spec.Role], token, ca.Fingerprint())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&role, "role", "", "worker|sender")
	f.StringVar(&name, "name", "", "identity `NAME` the certificate will carry")
	daysFlag(f, &ttl, "ttl", time.Hour, "how long the token can be used, at most 7d")
	f.StringSliceVar(&queues, "queues", nil, "worker: queue patterns to allow NAME (comma list)")
	f.StringSliceVar(&hosts, "hosts", nil, "sender: host patterns to allow NAME (comma list)")
	f.BoolVar(&reenroll, "reenroll", false, "allow a name that was revoked to enroll again")
	return cmd
}

func newCertsListCmd(s streams) *cobra.Command {
	var dir, output string
	var expiring time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List issued certificates, revocations and enrollment tokens",
		Long: `List issued certificates, revoked identities and enrollment tokens.

--expiring 30d lists only the certificates that expire within 30 days: for each
identity its newest certificate (an older one a renewal replaced does not
count), none that is revoked, soonest first, with the time left. Workers and
senders renew by themselves; what shows up here did not (an offline worker, a
pair issued with certs issue, the bridge's own certificate: renew those with
certs renew).

--output json prints the same as one JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(errors.New("certs list: --dir is required"))
			}
			if output != "text" && output != "json" {
				return usageError(fmt.Errorf("certs list: --output %q: want text or json", output))
			}
			if cmd.Flags().Changed("expiring") && expiring <= 0 {
				return usageError(fmt.Errorf("certs list: --expiring %v: want a positive duration such as 30d", expiring))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			issued, err := ca.Issued()
			if err != nil {
				return err
			}
			rv, err := ca.Revocations()
			if err != nil {
				return err
			}
			now := time.Now()
			if expiring > 0 {
				list := certs.Expiring(issued, rv, now, expiring)
				if output == "json" {
					return listJSON(s.out, certsListJSON{ExpiringWithin: (*daysValue)(&expiring).String(), Certificates: certStates(list, rv, now)})
				}
				return listExpiring(s, list, now, expiring)
			}
			toks, err := ca.Tokens().List()
			if err != nil {
				return err
			}
			if output == "json" {
				v := certsListJSON{CAFingerprint: ca.Fingerprint(), Certificates: certStates(issued, rv, now),
					RevokedIdentities: rv.Identities(), Tokens: []tokenJSON{}}
				if v.RevokedIdentities == nil {
					v.RevokedIdentities = []certs.IdentityRevocation{}
				}
				for _, t := range toks {
					v.Tokens = append(v.Tokens, tokenJSON{TokenRecord: t, State: tokenState(t, now)})
				}
				return listJSON(s.out, v)
			}
			fmt.Fprintf(s.out, "CA fingerprint: %s\n\n", ca.Fingerprint())
			w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SERIAL\tROLE\tNAME\tNOT AFTER\tSTATE")
			for _, ic := range certStates(issued, rv, now) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ic.Serial, ic.Role, ic.Name, ic.NotAfter.Format(time.RFC3339), ic.State)
			}
			_ = w.Flush()
			if ids := rv.Identities(); len(ids) > 0 {
				fmt.Fprintln(s.out, "\nRevoked identities (their certificates up to REVOKED AT are refused):")
				w = tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ROLE\tNAME\tREVOKED AT\tREASON\tRE-ENROLLED")
				for _, ir := range ids {
					re := "no"
					if ir.ReenrolledAt != nil {
						re = ir.ReenrolledAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ir.Role, ir.Name, ir.RevokedAt.UTC().Format(time.RFC3339), cmp.Or(ir.Reason, "-"), re)
				}
				_ = w.Flush()
			}
			fmt.Fprintln(s.out)
			w = tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOKEN SHA256\tROLE\tNAME\tEXPIRES\tSTATE")
			for _, t := range toks {
				state := tokenState(t, now)
				if t.UsedAt != nil {
					state = "used " + t.UsedAt.Format(time.RFC3339) + " serial " + t.Serial
				}
				fmt.Fprintf(w, "%s…\t%s\t%s\t%s\t%s\n", t.Hash[:16], t.Role, t.Name, t.ExpiresAt.Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA `DIR`ectory")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	daysFlag(cmd.Flags(), &expiring, "expiring", 0, "list only certificates expiring within this `DURATION`, e.g. 30d")
	return cmd
}

// certsListJSON is the JSON form of certs list.
type certsListJSON struct {
	CAFingerprint     string                     `json:"ca_fingerprint,omitempty"`
	ExpiringWithin    string                     `json:"expiring_within,omitempty"`
	Certificates      []certJSON                 `json:"certificates"`
	RevokedIdentities []certs.IdentityRevocation `json:"revoked_identities,omitempty"`
	Tokens            []tokenJSON                `json:"tokens,omitempty"`
}

type certJSON struct {
	certs.IssuedCert
	State string `json:"state"` // valid, revoked or expired
}

type tokenJSON struct {
	certs.TokenRecord
	State string `json:"state"` // unused, used or expired
}

// certStates gives each issued certificate its state.
func certStates(issued []certs.IssuedCert, rv *certs.Revocations, now time.Time) []certJSON {
	out := make([]certJSON, 0, len(issued))
	for _, ic := range issued {
		state := "valid"
		switch {
		case rv.IsRevokedIssued(ic):
			state = "revoked"
		case !now.Before(ic.NotAfter):
			state = "expired"
		}
		out = append(out, certJSON{IssuedCert: ic, State: state})
	}
	return out
}

func tokenState(t certs.TokenRecord, now time.Time) string {
	switch {
	case t.UsedAt != nil:
		return "used"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "unused"
}

func listJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listExpiring prints the certificates of certs.Expiring.
func listExpiring(s streams, list []certs.IssuedCert, now time.Time, within time.Duration) error {
	window := (*daysValue)(&within).String()
	if len(list) == 0 {
		fmt.Fprintf(s.out, "no certificate expires within %s\n", window)
		return nil
	}
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tROLE\tNAME\tNOT AFTER\tEXPIRES")
	for _, ic := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\tin %s\n", ic.Serial, ic.Role, ic.Name, ic.NotAfter.UTC().Format(time.RFC3339), roughly(ic.NotAfter.Sub(now)))
	}
	return w.Flush()
}

// roughly prints a time left in days and hours ("12d 3h"), or hours and
// minutes below a day.
func roughly(d time.Duration) string {
	d = d.Truncate(time.Minute)
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	switch {
	case days > 0 && rest/time.Hour == 0:
		return fmt.Sprintf("%dd", days)
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, rest/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

func newCertsRevokeCmd(s streams) *cobra.Command {
	var dir, reason, serial string
	cmd := &cobra.Command{
		Use:   "revoke NAME | --serial SERIAL",
		Short: "Revoke an identity (every certificate of NAME, renewed ones too) or one certificate",
		Long: `Revoke the identity NAME: every certificate issued for it up to now is refused,
including certificates renewed from one of them, and no new certificate is
issued for it (no renewal, no enrollment with a token made before) until it is
re-enrolled with certs issue --reenroll or certs token --reenroll.

--serial SERIAL (as certs list shows it) revokes that one certificate only.

The list is DIR/revoked.json. A bridge enforces it only if it reads it: started
with --certs-dir DIR, or with --tls-* files and --revocations DIR/revoked.json.
Such a bridge notices the change within a second, refuses the certificates from
then on and closes their sessions; their unfinished jobs go back to gearmand.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if dir == "" {
				return usageError(errors.New("certs revoke: --dir is required"))
			}
			if (len(args) == 1) == (serial != "") {
				return usageError(errors.New("certs revoke: name a NAME or a --serial, not both"))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			var res certs.RevokeResult
			if serial != "" {
				res, err = ca.RevokeSerial(serial, reason)
			} else {
				res, err = ca.RevokeName(args[0], reason)
				if err != nil && isIssuedSerial(ca, args[0]) {
					// What used to be the way to revoke one certificate.
					fmt.Fprintf(s.err, "note: %s is a serial; use --serial to revoke one certificate\n", args[0])
					res, err = ca.RevokeSerial(args[0], reason)
				}
			}
			if err != nil {
				return err
			}
			for _, ir := range res.Identities {
				fmt.Fprintf(s.out, "revoked %s %q: its certificates issued up to %s are refused; it gets no new ones until re-enrolled (--reenroll)\n",
					ir.Role, ir.Name, ir.RevokedAt.UTC().Format(time.RFC3339))
			}
			for _, sn := range res.Serials {
				fmt.Fprintf(s.out, "revoked serial %s\n", sn)
			}
			if res.UnknownSerial {
				fmt.Fprintf(s.err, "note: serial %s is not in %s; revoked anyway\n", res.Serials[0], filepath.Join(dir, certs.IssuedFile))
			}
			fmt.Fprintf(s.out, "revocation list: %s\n", res.File)
			fmt.Fprintf(s.err, "warning: a bridge enforces this list only if it reads it: start it with --certs-dir %s, or with --revocations %s next to its --tls-* files\n",
				dir, res.File)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&reason, "reason", "", "recorded in revoked.json")
	f.StringVar(&serial, "serial", "", "revoke only the certificate with this `SERIAL`")
	return cmd
}

// isIssuedSerial reports whether what is the serial of a certificate in
// issued.json.
func isIssuedSerial(ca *certs.CA, what string) bool {
	issued, err := ca.Issued()
	if err != nil {
		return false
	}
	key := strings.ToLower(strings.ReplaceAll(what, ":", ""))
	for _, ic := range issued {
		if ic.Serial == key {
			return true
		}
	}
	return false
}

func newCertsRenewCmd(s streams) *cobra.Command {
	var dir, name, out, certFile, keyFile string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "renew --name NAME | --cert FILE --cert-key FILE",
		Short: "Renew a certificate on the CA machine, the bridge's own included (new key, same identity)",
		Long: `Renew a certificate and key pair on the CA machine: a new key and a certificate
for the same role and name (for the bridge also the same DNS names and IP
addresses) replace the files, each atomically, the key first.

--name NAME renews NAME.crt and NAME.key in the CA directory or --out, as certs
issue wrote them; --cert and --cert-key name the files directly (--key is the
classic payload key everywhere, so the certificate's key has its own name). A running bridge
picks up its renewed certificate by itself for new connections; sessions stay.
Enrolled workers and senders renew by themselves over their connection to the
bridge. A revoked name is not renewed (see certs issue --reenroll).`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			switch {
			case dir == "":
				return usageError(errors.New("certs renew: --dir is required"))
			case name != "" && (certFile != "" || keyFile != ""):
				return usageError(errors.New("certs renew: name a --name or --cert and --cert-key, not both"))
			case name == "" && (certFile == "" || keyFile == ""):
				return usageError(errors.New("certs renew: --name, or --cert and --cert-key, are required"))
			}
			if name != "" {
				if strings.ContainsAny(name, `/\`) || name == "." || name == ".." || strings.HasPrefix(name, ".") {
					return usageError(fmt.Errorf("certs renew: --name %q is not a certificate name", name))
				}
				base := cmp.Or(out, dir)
				certFile, keyFile = filepath.Join(base, name+".crt"), filepath.Join(base, name+".key")
				if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("certs renew: %s does not exist (issue it with certs issue, or pass --out)", certFile)
				}
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			f, err := ca.RenewFiles(certFile, keyFile, lifetime)
			if err != nil {
				return err
			}
			role, id, _ := certs.IdentityOf(f.Cert)
			fmt.Fprintf(s.out, "renewed %s certificate for %q: %s, %s (serial %s, valid until %s)\n", role, id,
				certFile, keyFile, certs.SerialOf(f.Cert), f.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&name, "name", "", "renew `NAME`.crt and NAME.key (in the CA directory or --out)")
	f.StringVar(&out, "out", "", "with --name: the `DIR`ectory the pair is in")
	f.StringVar(&certFile, "cert", "", "certificate `FILE` to renew")
	f.StringVar(&keyFile, "cert-key", "", "the certificate's private key `FILE`")
	daysFlag(f, &lifetime, "lifetime", 0, "certificate lifetime, e.g. 90d (default 90d)")
	return cmd
}
