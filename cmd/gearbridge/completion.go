package main

import "github.com/spf13/cobra"

// enableCompletion offers cobra's `gearbridge completion bash|zsh|fish|powershell`,
// which prints a script that completes commands, flags and flag values.
func enableCompletion(root *cobra.Command) {
	root.CompletionOptions.DisableDefaultCmd = false
	root.CompletionOptions.HiddenDefaultCmd = false
}
