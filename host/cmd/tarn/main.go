// Command tarn is the whole of tarn in one binary: the node (host), the CLI,
// and the built-in plugins, which the host runs as child processes of this
// same binary ("tarn plugin serve KIND NAME").
//
// Each command group lives in its own cmd_*.go file and registers itself
// with the root command in an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "tarn",
	Short:         "tarn: a least-authority, erasure-coded, encrypted file store",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "tarn: %v\n", err)
		os.Exit(1)
	}
}
