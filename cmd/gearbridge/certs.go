package main

import (
	"errors"
	"fmt"
	"path/filepath"
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
			return usageError(errors.New("certs: name a subcommand (init or issue)"))
		},
	}
	cmd.AddCommand(newCertsInitCmd(s), newCertsIssueCmd(s))
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
