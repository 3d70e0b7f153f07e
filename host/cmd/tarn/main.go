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
	"strings"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "tarn",
	Short:         "tarn: a least-authority, erasure-coded, encrypted file store",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	polishCommands(rootCmd)
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "tarn: %v\n", err)
		os.Exit(1)
	}
}

// polishCommands makes cobra's own errors read like tarn's: one line naming
// the command and pointing at its usage. It runs after every cmd_*.go has
// registered its commands.
//
//   - A group command (config, account, alias, cap, plugin) given an
//     unknown subcommand fails with a suggestion; cobra would print the
//     group's help and exit 0, so `tarn config chek` in a script or a
//     systemd ExecStartPre passed without checking anything.
//   - A wrong number of arguments or a bad flag names the command and its
//     usage line.
func polishCommands(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%s: %v (usage: %s; see %s --help)", cmdName(c), err, c.UseLine(), c.CommandPath())
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return c.Help()
				}
				return unknownSubcommand(c, args[0])
			}
			return
		}
		if c.Args != nil {
			check := c.Args
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return fmt.Errorf("%s: %v (usage: %s)", cmdName(c), err, c.UseLine())
				}
				return nil
			}
		}
	}
	walk(root)
}

// unknownSubcommand is the error for `tarn GROUP NAME` when GROUP has no
// command NAME.
func unknownSubcommand(c *cobra.Command, name string) error {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if c.HasParent() {
		msg = cmdName(c) + ": " + msg
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	if !c.HasParent() {
		return fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())
	}
	return fmt.Errorf("%s; commands: %s (see %s --help)", msg, strings.Join(names, ", "), c.CommandPath())
}

// cmdName is the command's path without the leading "tarn " ("config
// check"), as the "tarn: " of every error already says the program.
func cmdName(c *cobra.Command) string {
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}
