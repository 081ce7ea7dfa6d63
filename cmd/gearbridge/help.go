package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globalFlagsUsed names, by command path without the root, the global
// flags each command reads. A command that is not listed takes the entry of
// its nearest listed parent; the root's own help shows them all. Only the
// help and usage text follow this list: every command still parses every
// global flag.
var globalFlagsUsed = map[string][]string{
	"version":       nil,
	"completion":    nil,
	"man":           nil,
	"help":          nil,
	"certs":         nil,
	"bench":         {"server", "log-level", "log-format"},
	"bridge":        {"server", "key", "keyfile", "encryption", "listen", "tls-ca", "tls-cert", "tls-key", "config", "log-level", "log-format"},
	"worker":        {"server", "key", "keyfile", "encryption", "bridge", "tls-ca", "tls-cert", "tls-key", "identifier", "config", "log-level", "log-format"},
	"worker enroll": {"bridge"},
	"send":          {"server", "key", "keyfile", "encryption", "bridge", "tls-ca", "tls-cert", "tls-key", "config", "log-level", "log-format"},
	"send enroll":   {"bridge"},
	"top":           {"server", "bridge", "tls-ca", "tls-cert", "tls-key"},
	"check":         {"server", "bridge", "tls-ca", "tls-cert", "tls-key"},
	"config":        {"tls-ca"},
}

// usedGlobals returns the global flags cmd's help shows, or ok false for
// all of them.
func usedGlobals(cmd *cobra.Command) (names map[string]bool, ok bool) {
	for c := cmd; c != nil && c.HasParent(); c = c.Parent() {
		path := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
		if used, found := globalFlagsUsed[path]; found {
			names = make(map[string]bool, len(used))
			for _, n := range used {
				names[n] = true
			}
			return names, true
		}
	}
	return nil, false
}

// hideUnusedGlobals hides the global flags cmd does not read and returns
// a function that restores them. The flags stay defined and parsed.
func hideUnusedGlobals(cmd *cobra.Command) (restore func()) {
	used, ok := usedGlobals(cmd)
	if !ok {
		return func() {}
	}
	var hidden []*pflag.Flag
	cmd.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if !used[f.Name] && !f.Hidden {
			f.Hidden = true
			hidden = append(hidden, f)
		}
	})
	return func() {
		for _, f := range hidden {
			f.Hidden = false
		}
	}
}

// fitHelp makes every command's help and usage show only the global flags
// that command uses.
func fitHelp(root *cobra.Command) {
	help, usage := root.HelpFunc(), root.UsageFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		defer hideUnusedGlobals(cmd)()
		help(cmd, args)
	})
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		defer hideUnusedGlobals(cmd)()
		return usage(cmd)
	})
}
