package main

import (
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gearbridge/gearbridge/certs"
)

func newCertsCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Manage the private CA and certificates",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("certs: name a subcommand (init, issue, token, list, revoke or renew)"))
		},
	}
	cmd.AddCommand(newCertsInitCmd(s), newCertsIssueCmd(s), newCertsTokenCmd(s), newCertsListCmd(s),
		newCertsRevokeCmd(s), newCertsRenewCmd(s))
	return cmd
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
	cmd.Flags().DurationVar(&lifetime, "lifetime", 0, "CA lifetime (default 10 years)")
	return cmd
}

func newCertsIssueCmd(s streams) *cobra.Command {
	var dir, role, name, out string
	var sans []string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate and key (DIR/NAME.crt, DIR/NAME.key) for a bridge, worker, sender or admin",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" || name == "" {
				return usageError(errors.New("certs issue: --dir and --name are required"))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			var certPEM, keyPEM []byte
			switch certs.Role(role) {
			case certs.RoleBridge:
				names := sans
				if len(names) == 0 {
					names = []string{name, "localhost", "127.0.0.1", "::1"}
				}
				certPEM, keyPEM, err = ca.IssueServer(names, lifetime)
			case certs.RoleWorker, certs.RoleSender, certs.RoleAdmin:
				if len(sans) > 0 {
					return usageError(errors.New("certs issue: --san applies to the bridge role only"))
				}
				certPEM, keyPEM, err = ca.IssueClient(certs.Role(role), name, lifetime)
			default:
				return usageError(fmt.Errorf("certs issue: role %q: want bridge, worker, sender or admin", role))
			}
			if err != nil {
				return err
			}
			if out == "" {
				out = dir
			}
			crt, key := filepath.Join(out, name+".crt"), filepath.Join(out, name+".key")
			if err := certs.WriteFileAtomic(key, keyPEM, 0o600); err != nil {
				return err
			}
			if err := certs.WriteFileAtomic(crt, certPEM, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "issued %s certificate for %q: %s, %s\n", role, name, crt, key)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&role, "role", "", "bridge|worker|sender|admin")
	f.StringVar(&name, "name", "", "identity `NAME` (what --authz rules match)")
	f.StringSliceVar(&sans, "san", nil, "bridge only: DNS names and IPs workers dial (default NAME, localhost, 127.0.0.1, ::1)")
	f.DurationVar(&lifetime, "lifetime", 0, "certificate lifetime (default 90 days)")
	f.StringVar(&out, "out", "", "write into `DIR` instead of the CA directory")
	return cmd
}

func newCertsTokenCmd(s streams) *cobra.Command {
	var dir, role, name string
	var queues, hosts []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create a one-time enrollment token for a worker or sender",
		Long: `Create a one-time enrollment token. It is printed once, together with the CA
fingerprint the enrolling peer pins; the CA directory keeps only its SHA-256.
The token can be used once, until it expires (--ttl).

--queues (workers) or --hosts (senders) become an allow rule for NAME that the
bridge adds to its authorization rules at enrollment (kept in
DIR/enrolled-authz.json, merged with --authz). Without them the bridge's
--authz file must allow NAME.`,
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
			token, rec, err := ca.Tokens().Create(spec, ttl)
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
	f.DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used")
	f.StringSliceVar(&queues, "queues", nil, "worker: queue patterns to allow NAME (comma list)")
	f.StringSliceVar(&hosts, "hosts", nil, "sender: host patterns to allow NAME (comma list)")
	return cmd
}

func newCertsListCmd(s streams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List issued certificates, revocations and enrollment tokens",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usageError(errors.New("certs list: --dir is required"))
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
			toks, err := ca.Tokens().List()
			if err != nil {
				return err
			}
			now := time.Now()
			fmt.Fprintf(s.out, "CA fingerprint: %s\n\n", ca.Fingerprint())
			w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SERIAL\tROLE\tNAME\tNOT AFTER\tSTATE")
			for _, ic := range issued {
				n, _ := new(big.Int).SetString(ic.Serial, 16)
				state := "valid"
				switch {
				case n != nil && rv.IsRevoked(n):
					state = "revoked"
				case !now.Before(ic.NotAfter):
					state = "expired"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ic.Serial, ic.Role, ic.Name, ic.NotAfter.Format(time.RFC3339), state)
			}
			_ = w.Flush()
			fmt.Fprintln(s.out)
			w = tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOKEN SHA256\tROLE\tNAME\tEXPIRES\tSTATE")
			for _, t := range toks {
				state := "unused"
				switch {
				case t.UsedAt != nil:
					state = "used " + t.UsedAt.Format(time.RFC3339) + " serial " + t.Serial
				case !now.Before(t.ExpiresAt):
					state = "expired"
				}
				fmt.Fprintf(w, "%s…\t%s\t%s\t%s\t%s\n", t.Hash[:16], t.Role, t.Name, t.ExpiresAt.Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA `DIR`ectory")
	return cmd
}

func newCertsRevokeCmd(s streams) *cobra.Command {
	var dir, reason string
	cmd := &cobra.Command{
		Use:   "revoke SERIAL|NAME",
		Short: "Revoke a certificate by serial, or every unexpired certificate of NAME",
		Long: `Revoke a certificate by its serial (as certs list shows it), or every unexpired
certificate issued for NAME. The bridge notices the changed revoked.json within
a second, refuses the certificates from then on and closes their sessions; their
unfinished jobs go back to gearmand.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if dir == "" {
				return usageError(errors.New("certs revoke: --dir is required"))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			serials, err := ca.RevokeSerialOrName(args[0], reason)
			if err != nil {
				return err
			}
			for _, sn := range serials {
				fmt.Fprintf(s.out, "revoked %s\n", sn)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA `DIR`ectory")
	cmd.Flags().StringVar(&reason, "reason", "", "recorded in revoked.json")
	return cmd
}

func newCertsRenewCmd(s streams) *cobra.Command {
	var dir, certFile, keyFile string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Renew a local worker, sender or admin certificate (new key, same identity)",
		Long: `Renew a certificate and key pair on the CA machine: a new key and a certificate
for the same role and name replace the files atomically. Enrolled workers and
senders renew by themselves over their connection to the bridge.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" || certFile == "" || keyFile == "" {
				return usageError(errors.New("certs renew: --dir, --cert and --key are required"))
			}
			ca, err := certs.LoadCA(dir)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			old, err := certs.ParseCertificatePEM(data)
			if err != nil {
				return fmt.Errorf("certs renew: %s: %w", certFile, err)
			}
			role, name, err := certs.IdentityOf(old)
			if err != nil {
				return err
			}
			if role == certs.RoleBridge {
				return usageError(errors.New("certs renew: reissue a bridge certificate with certs issue --role bridge"))
			}
			certPEM, keyPEM, err := ca.IssueClient(role, name, lifetime)
			if err != nil {
				return err
			}
			if err := certs.WriteFileAtomic(keyFile, keyPEM, certs.KeyFileMode); err != nil {
				return err
			}
			if err := certs.WriteFileAtomic(certFile, certPEM, certs.CertFileMode); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "renewed %s certificate for %q: %s, %s\n", role, name, certFile, keyFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA `DIR`ectory")
	f.StringVar(&certFile, "cert", "", "certificate `FILE` to renew")
	f.StringVar(&keyFile, "key", "", "its key `FILE`")
	f.DurationVar(&lifetime, "lifetime", 0, "certificate lifetime (default 90 days)")
	return cmd
}
