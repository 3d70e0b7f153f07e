package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/aliases"
)

var aliasFlags struct {
	node string
	json bool
}

var aliasCmd = &cobra.Command{
	Use:   "alias",
	Short: "Manage aliases: short names for directory caps (NAME:path/in/dir)",
	Long: `Aliases name directory caps so paths can be written NAME:path/in/dir, as
in Tahoe-LAFS. They live in the client node's private/aliases file (mode
0600: a write cap is the authority over its directory).`,
}

var aliasAddCmd = &cobra.Command{
	Use:   "add NAME CAP",
	Short: "Add an alias for a cap",
	Args:  cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDir(aliasFlags.node)
		if err != nil {
			return fmt.Errorf("alias add: %w", err)
		}
		if err := aliases.Add(aliases.File(dir), args[0], args[1]); err != nil {
			return fmt.Errorf("alias add: %w", err)
		}
		return nil
	},
}

var aliasListCmd = &cobra.Command{
	Use:     "list",
	Aliases: []string{"ls"},
	Short:   "List the aliases and their caps",
	Args:    cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDir(aliasFlags.node)
		if err != nil {
			return fmt.Errorf("alias list: %w", err)
		}
		list, err := aliases.Load(aliases.File(dir))
		if err != nil {
			return fmt.Errorf("alias list: %w", err)
		}
		out := cmd.OutOrStdout()
		if aliasFlags.json {
			m := map[string]string{}
			for _, a := range list {
				m[a.Name] = a.Cap
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(m)
		}
		for _, a := range list {
			fmt.Fprintf(out, "%s: %s\n", a.Name, a.Cap)
		}
		return nil
	},
}

var aliasRmCmd = &cobra.Command{
	Use:     "rm NAME",
	Aliases: []string{"remove"},
	Short:   "Remove an alias (the directory stays; only the name goes)",
	Args:    cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDir(aliasFlags.node)
		if err != nil {
			return fmt.Errorf("alias rm: %w", err)
		}
		if err := aliases.Remove(aliases.File(dir), args[0]); err != nil {
			return fmt.Errorf("alias rm: %w", err)
		}
		return nil
	},
}

var createAliasCmd = &cobra.Command{
	Use:   "create-alias NAME",
	Short: "Make a new empty directory on the grid and an alias for it",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if !aliases.ValidName(name) {
			return fmt.Errorf("create-alias: %w %q: want 1-64 of A-Z a-z 0-9 . _ @ - starting with a letter or digit", aliases.ErrBadName, name)
		}
		dir, err := nodeDir(aliasFlags.node)
		if err != nil {
			return fmt.Errorf("create-alias: %w", err)
		}
		file := aliases.File(dir)
		if _, err := aliases.Lookup(file, name); err == nil {
			return fmt.Errorf("create-alias: %w: %s (tarn alias rm %s first)", aliases.ErrExist, name, name)
		}
		c, err := apiClient(aliasFlags.node)
		if err != nil {
			return fmt.Errorf("create-alias: %w", err)
		}
		ctx, stop := cliContext()
		defer stop()
		dc, err := c.NewDir(ctx)
		if err != nil {
			return fsError("create-alias", name, err)
		}
		if err := aliases.Add(file, name, dc.WriteCap); err != nil {
			return fmt.Errorf("create-alias: %w", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "alias %s: created a new directory\n", name)
		return nil
	},
}

func init() {
	aliasCmd.PersistentFlags().StringVar(&aliasFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	aliasListCmd.Flags().BoolVar(&aliasFlags.json, "json", false, "print a JSON object NAME -> CAP")
	aliasCmd.AddCommand(aliasAddCmd, aliasListCmd, aliasRmCmd)
	createAliasCmd.Flags().StringVar(&aliasFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	rootCmd.AddCommand(aliasCmd, createAliasCmd)
}
