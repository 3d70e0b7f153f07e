package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/node"
)

// EnvNode names the default node folder of the CLI.
const EnvNode = "TARN_NODE"

// nodeDir resolves the node folder: the flag, else $TARN_NODE, else ~/.tarn.
func nodeDir(flag string) (string, error) {
	if flag == "" {
		flag = os.Getenv(EnvNode)
	}
	if flag == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no node folder: use --node DIR or set %s (%v)", EnvNode, err)
		}
		flag = filepath.Join(home, ".tarn")
	}
	return filepath.Abs(flag)
}

// apiClient finds the running node in dir and its API token.
func apiClient(flag string) (*api.Client, error) {
	dir, err := nodeDir(flag)
	if err != nil {
		return nil, err
	}
	in, err := node.ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	if in.Pid > 0 && syscall.Kill(in.Pid, 0) == syscall.ESRCH {
		return nil, fmt.Errorf("%s: %w (its node.json names pid %d, which is gone: it was killed; start it again)", dir, node.ErrNotRunning, in.Pid)
	}
	if in.APIURL == "" {
		return nil, fmt.Errorf("node %s runs no client (roles: %s): point --node at a client node", dir, strings.Join(in.Roles, ", "))
	}
	tok, err := node.ReadToken(in.TokenFile)
	if err != nil {
		return nil, err
	}
	return &api.Client{BaseURL: in.APIURL, Token: tok}, nil
}

// apiError makes a client error one clear line.
func apiError(op string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", op, ae.Msg)
	}
	return fmt.Errorf("%s: %w", op, err)
}

var statusFlags struct {
	node string
	json bool
}

var statusCmd = &cobra.Command{
	Use:   "status",
	Short: "Show the client node's status: servers, plugins, counters",
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := apiClient(statusFlags.node)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			return apiError("status", err)
		}
		if statusFlags.json {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(cmd.OutOrStdout(), st)
		return nil
	},
}

func printStatus(out io.Writer, st *api.Status) {
	fmt.Fprintf(out, "node %s (%s), roles: %s, grid %q, up %s\n", st.Name, st.NodeID,
		strings.Join(st.Roles, ", "), st.Grid, time.Duration(st.Uptime*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(out, "shares: k=%d h=%d n=%d\n", st.Shares.K, st.Shares.H, st.Shares.N)
	fmt.Fprintf(out, "storage servers: %d known, %d connected\n", st.Known, st.Conn)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if len(st.Servers) > 0 {
		fmt.Fprintln(tw, "  NAME\tNODE ID\tFREE\tLAST SEEN\tADDRESS")
		for _, s := range st.Servers {
			seen := "static"
			if !s.LastSeen.IsZero() {
				seen = time.Since(s.LastSeen).Round(time.Second).String() + " ago"
			}
			addr := s.Address
			if i := strings.IndexByte(addr, '@'); i >= 0 {
				addr = addr[i+1:]
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Nickname, s.NodeID, humanBytes(int64(s.FreeSpace)), seen, addr)
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "plugins:")
	for _, p := range st.Plugins {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tpid %d\t%s\trestarts %d\n", p.Kind, p.Name, p.Version, p.Pid, p.Health, p.Restarts)
	}
	tw.Flush()
	c := st.Counters
	fmt.Fprintf(out, "api: %d uploads (%s in), %d downloads (%s out), %d failures\n",
		c.Uploads, humanBytes(c.BytesIn), c.Downloads, humanBytes(c.BytesOut), c.Failures)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func init() {
	f := statusCmd.Flags()
	f.StringVar(&statusFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	f.BoolVar(&statusFlags.json, "json", false, "print the status as JSON")
	rootCmd.AddCommand(statusCmd)
}
