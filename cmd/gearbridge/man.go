package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/gearbridge/gearbridge/internal/buildinfo"
)

// newManCmd is the hidden `gearbridge man --dir DIR` behind `make man`: it
// writes a page in section 1 for each command of the tree.
func newManCmd(s streams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write man pages for all commands into a directory",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(errors.New("man: --dir is required"))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			n, err := writeManPages(cmd.Root(), dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "wrote %d man pages to %s\n", n, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "write the pages into `DIR` (created if missing)")
	return cmd
}

// writeManPages writes one page per available command under root, named
// like the command path with dashes (gearbridge-worker-enroll.1). Like the
// help, a page lists only the global flags its command uses.
func writeManPages(root *cobra.Command, dir string) (int, error) {
	header := &doc.GenManHeader{
		Title:   strings.ToUpper(root.Name()),
		Section: "1",
		Source:  root.Name() + " " + buildinfo.Get().Version,
		Manual:  "gearbridge manual",
	}
	root.DisableAutoGenTag = true
	var n int
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + "." + header.Section
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		restore := hideUnusedGlobals(c)
		h := *header // GenMan fills in the date
		err = doc.GenMan(c, &h, f)
		restore()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("man page %s: %w", name, err)
		}
		n++
		return nil
	}
	return n, walk(root)
}
