package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tarnfs/tarn/frontends/webdav"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/vdrive"
)

// rootWait bounds the wait for storage servers before a missing root is
// made.
const rootWait = 2 * time.Minute

// StartWebDAV starts the profile's enabled [[webdav]] frontends over the
// node's grid client, each account on its own root; they stop with the
// node. It returns their URLs in profile order (none when the profile
// enables none). An account whose root_cap_file is missing gets a new
// empty root, its cap written there (logged). Start calls it once the
// client is up and sees its storage servers (making a root needs them);
// tests may call it on a node whose start does not.
func StartWebDAV(ctx context.Context, n *Node) ([]string, error) {
	var enabled int
	for _, w := range n.prof.WebDAV {
		if w.Enabled {
			enabled++
		}
	}
	if enabled == 0 {
		return nil, nil
	}
	if n.client == nil {
		return nil, errors.New("webdav: needs client.enabled (the frontends reach the grid through the client)")
	}
	store := n.store // the node's write-behind (startClient)
	set, err := n.frontendAccounts(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("webdav: accounts: %w", err)
	}
	// Clients stat many paths in a row (PROPFIND, rclone): keep directory
	// roots a second; a drive sees its own changes at once.
	driveFor := func(a *accounts.Account) (*vdrive.Drive, error) {
		return vdrive.New(store, a.RootCap, vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind())
	}
	var urls []string
	locks := webdav.NewLocks() // one lock table for all frontends
	for _, w := range n.prof.WebDAV {
		if !w.Enabled {
			continue
		}
		s, err := webdav.Start(n.ctx, webdav.Options{
			Config: w, Accounts: set, DriveFor: driveFor, Quota: n.webdavQuota,
			StateDir: n.prof.Node.StateDir, Logger: n.log.Named("webdav"), Locks: locks,
			OnRequest: func(method string) { n.metrics.WebDAVRequests.WithLabelValues(webdavMethod(method)).Inc() },
		})
		if err != nil {
			return urls, err
		}
		n.onStop(func() { s.Close() })
		urls = append(urls, s.URL())
	}
	return urls, nil
}

// frontendAccounts loads the profile's accounts for a frontend: root_alias
// through the node's alias file, and a missing root_cap_file made into a
// new empty root (its cap written there, logged), once the client sees
// enough storage servers to place it.
func (n *Node) frontendAccounts(ctx context.Context, store vdrive.Store) (*accounts.Set, error) {
	return accounts.Load(n.prof,
		accounts.WithAliasResolver(aliases.Resolver(n.prof.Dir)),
		accounts.WithCreateRoot(func(name string) (string, error) {
			wctx, cancel := context.WithTimeout(ctx, rootWait)
			defer cancel()
			// Say what start waits for: it may be minutes with no other line.
			h, began := n.prof.Client.Shares.H, time.Now()
			n.log.Info("account root_cap_file missing: waiting for storage servers to create its root",
				"account", name, "servers", h, "known", len(n.Servers()), "at_most", rootWait)
			if err := n.WaitServers(wctx, h); err != nil {
				return "", fmt.Errorf("wait for %d storage servers: %w", h, err)
			}
			n.log.Info("storage servers ready: creating the account's root", "account", name,
				"servers", len(n.Servers()), "waited", time.Since(began).Round(time.Millisecond))
			root, err := vdrive.NewRoot(wctx, store)
			if err != nil {
				return "", err
			}
			n.log.Warn("created a new, empty root directory for an account whose root_cap_file was missing", "account", name)
			return root.String(), nil
		}))
}

// webdavQuota is the grid's room for new files as the quota properties
// report it: the free space the storage servers announce, times K/N (the
// share expansion of new uploads). Used space is not known (left out).
// Servers whose free space is unknown are left out of the sum
// (announcedFree); when no server's is known, there is no quota: the
// properties are left out (RFC 4331 lets a server omit what it cannot
// tell) and no PUT is refused as too large.
func (n *Node) webdavQuota(context.Context) (webdav.Quota, error) {
	servers := n.Servers()
	free, known := announcedFree(servers)
	k, m := n.prof.Client.Shares.K, n.prof.Client.Shares.N
	if k <= 0 || m <= 0 || len(servers) == 0 {
		return webdav.Quota{}, errors.New("no storage servers known")
	}
	if known == 0 {
		return webdav.Quota{}, fmt.Errorf("free space unknown on all %d storage servers", len(servers))
	}
	// float64(math.MaxInt64) is 2^63, past the largest int64: compare
	// with >= so the conversion never overflows to a negative quota.
	avail := float64(free) * float64(k) / float64(m)
	if avail >= math.MaxInt64 {
		return webdav.Quota{Available: math.MaxInt64, Used: -1}, nil
	}
	return webdav.Quota{Available: int64(avail), Used: -1}, nil
}

// webdavMethod keeps the metric's method label to the methods WebDAV
// defines: anything else is "other", so a client cannot grow the label set.
func webdavMethod(m string) string {
	switch m {
	case "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK":
		return m
	}
	return "other"
}
