package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/cap"
)

var capFlags struct{ json bool }

var capCmd = &cobra.Command{
	Use:   "cap",
	Short: "Work with caps offline",
}

// capForms are the write, read and verify forms of a cap.
type capForms struct {
	Kind   string `json:"kind"`
	Write  string `json:"write,omitempty"`
	Read   string `json:"read,omitempty"`
	Verify string `json:"verify,omitempty"`
}

func diminish(s string) (capForms, error) {
	c, err := cap.Parse(s)
	if err != nil {
		return capForms{}, err
	}
	f := capForms{Kind: c.Kind()}
	switch c.(type) {
	case cap.DirWrite, cap.MutableWrite:
		f.Write = c.String()
	}
	if r, err := cap.ReadOnly(c); err == nil {
		f.Read = r.String()
	}
	if v, err := cap.Diminish(c); err == nil {
		f.Verify = v.String()
	} else if !errors.Is(err, cap.ErrNoVerify) {
		return capForms{}, err
	}
	return f, nil
}

var capDiminishCmd = &cobra.Command{
	Use:   "diminish CAP",
	Short: "Print the weaker forms of a cap: read and verify (offline)",
	Long: `Print the read and verify forms of CAP, computed offline: a directory or
mutable write cap gives its read cap and verify cap, a read cap its verify
cap. Give a read cap to let someone read without writing, a verify cap to
let a repairer check without reading. A literal cap (a small file kept
inside the cap) has no verify form.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		f, err := diminish(args[0])
		if err != nil {
			return fmt.Errorf("cap diminish: %w", err)
		}
		out := cmd.OutOrStdout()
		if capFlags.json {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(f)
		}
		if f.Write != "" {
			fmt.Fprintf(out, "write:  %s\n", f.Write)
		}
		if f.Read != "" {
			fmt.Fprintf(out, "read:   %s\n", f.Read)
		}
		if f.Verify != "" {
			fmt.Fprintf(out, "verify: %s\n", f.Verify)
		}
		return nil
	},
}

func init() {
	capDiminishCmd.Flags().BoolVar(&capFlags.json, "json", false, "print JSON {kind, write, read, verify}")
	// Offline, but --node is taken (and ignored) like every command's.
	capCmd.PersistentFlags().String("node", "", "ignored: cap commands work offline")
	capCmd.PersistentFlags().MarkHidden("node")
	capCmd.AddCommand(capDiminishCmd)
	rootCmd.AddCommand(capCmd)
}
