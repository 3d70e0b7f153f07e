package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/node"
)

var runCmd = &cobra.Command{
	Use:   "run [DIR]",
	Short: "Run the node whose profile is DIR/tarn.toml until SIGINT or SIGTERM",
	Long: `Run the node in DIR (default: $TARN_NODE, then ~/.tarn): start its plugins
and the services its profile enables (introducer, storage server, client and
its local API). While it runs, DIR/node.json says where it listens.
SIGINT or SIGTERM stops it cleanly.`,
	Args: cobra.MaximumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir := ""
		if len(args) == 1 {
			dir = args[0]
		}
		dir, err := nodeDir(dir)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := node.Run(ctx, dir, nil); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		return nil
	},
}

func init() { rootCmd.AddCommand(runCmd) }
