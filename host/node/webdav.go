package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/frontends/webdav"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/vdrive"
)

// StartWebDAV starts the profile's enabled [[webdav]] frontends over the
// node's grid client, each account on its own root; they stop with the
// node. It returns their URLs in profile order (none when the profile
// enables none). Start calls it once the client is up; tests may call it
// on a node whose start does not.
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
	set, err := accounts.Load(n.prof)
	if err != nil {
		return nil, fmt.Errorf("webdav: accounts: %w", err)
	}
	store := vdrive.GridStore(n.client)
	driveFor := func(a *accounts.Account) (*vdrive.Drive, error) { return vdrive.New(store, a.RootCap) }
	var urls []string
	for _, w := range n.prof.WebDAV {
		if !w.Enabled {
			continue
		}
		s, err := webdav.Start(n.ctx, webdav.Options{
			Config: w, Accounts: set, DriveFor: driveFor,
			StateDir: n.prof.Node.StateDir, Logger: n.log.Named("webdav"),
		})
		if err != nil {
			return urls, err
		}
		n.onStop(func() { s.Close() })
		urls = append(urls, s.URL())
	}
	return urls, nil
}
