package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gearbridge/gearbridge/internal/buildinfo"
)

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the commit",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(s.out, buildinfo.Get())
			return err
		},
	}
}
