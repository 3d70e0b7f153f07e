package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/node"
)

var runCmd = &cobra.Command{
	Use:   "run [DIR]",
	Short: "Run the node whose profile is DIR/tarn.toml until SIGINT or SIGTERM",
	Long: `Run the node in DIR (default: $TARN_NODE, then ~/.tarn): start its plugins
and the services its profile enables (introducer, storage server, client and
its local API). While it runs, DIR/node.json says where it listens.
SIGINT or SIGTERM stops it cleanly. The profile is read once, at start: to
apply a change, restart the node (SIGHUP is logged and otherwise ignored).

Before starting, it checks the profile and the files it names as
"tarn config check" does, and refuses to start on any problem.`,
	Example: `  tarn run /var/lib/tarn/storage
  TARN_NODE=~/.tarn-dev/client tarn run`,
	Args: cobra.MaximumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDirFor(cmd, args)
		if err != nil {
			return err
		}
		if dir, err = nodeDir(dir); err != nil {
			return err
		}
		logger, err := runPrecheck(dir)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		// SIGHUP's default action ends the process at once, leaving
		// node.json behind; operators send it expecting a reload, which
		// tarn does not do. Say so and keep running.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				if logger != nil {
					logger.Warn("SIGHUP ignored: tarn reads its profile only at start; restart the node to apply changes")
				}
			}
		}()
		if err := node.Run(ctx, dir, logger); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		return nil
	},
}

// runPrecheck loads the profile and checks the files it names, as
// `tarn config check` does, so that `tarn run` refuses a broken node folder
// with the same FILE:LINE: KEY lines before any plugin starts. It returns
// the node's logger (the profile's level and format), or nil when the
// profile does not load (node.Run then reports why).
func runPrecheck(dir string) (hclog.Logger, error) {
	p, err := conf.Load(dir)
	var list conf.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			fmt.Fprintln(os.Stderr, e)
		}
		return nil, fmt.Errorf("run: %s: %d %s", list[0].File, len(list), plural(len(list), "problem"))
	case err != nil:
		return nil, fmt.Errorf("run: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       p.Node.Name,
		Level:      hclog.LevelFromString(p.Node.LogLevel),
		Output:     os.Stderr,
		JSONFormat: p.Node.LogFormat == "json",
	})
	problems, warnings := checkFiles(p)
	for _, w := range warnings {
		logger.Warn(w.Error())
	}
	if len(problems) > 0 {
		for _, e := range problems {
			fmt.Fprintln(os.Stderr, e)
		}
		return nil, fmt.Errorf("run: %s: %d %s", p.File, len(problems), plural(len(problems), "problem"))
	}
	return logger, nil
}

func init() {
	addNodeFlag(runCmd)
	rootCmd.AddCommand(runCmd)
}
