package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/tarnfs/tarn/frontends/sftp"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/vdrive"
)

// sftpDirCache is how long an SFTP drive reuses a directory it read: a
// session sees its own account's changes at once (one drive per account),
// other clients' within this.
const sftpDirCache = time.Second

// StartSFTP starts the profile's enabled [[sftp]] frontends over the
// node's grid client, each account on its own root; they stop with the
// node. It returns their listen addresses (host:port) in profile order
// (none when the profile enables none). Accounts load as for WebDAV
// (frontendAccounts). Start calls it once the client is up and sees its
// storage servers; tests may call it on a node whose start does not.
func StartSFTP(ctx context.Context, n *Node) ([]string, error) {
	var enabled int
	for _, s := range n.prof.SFTP {
		if s.Enabled {
			enabled++
		}
	}
	if enabled == 0 {
		return nil, nil
	}
	if n.client == nil {
		return nil, errors.New("sftp: needs client.enabled (the frontends reach the grid through the client)")
	}
	store := n.store // the node's write-behind (startClient)
	// The same accounts as WebDAV's: root_alias through the node's alias
	// file, a missing root_cap_file made into a new empty root.
	set, err := n.frontendAccounts(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("sftp: accounts: %w", err)
	}
	// One drive per account, shared by its sessions, so each sees the
	// others' changes at once.
	var mu sync.Mutex
	drives := map[string]*vdrive.Drive{}
	driveFor := func(a *accounts.Account) (*vdrive.Drive, error) {
		mu.Lock()
		defer mu.Unlock()
		key := a.Name + "\x00" + a.RootCap
		if d, ok := drives[key]; ok {
			return d, nil
		}
		d, err := vdrive.New(store, a.RootCap, vdrive.WithDirCache(sftpDirCache), vdrive.WithWriteBehind())
		if err != nil {
			return nil, err
		}
		drives[key] = d
		return d, nil
	}
	var addrs []string
	for _, c := range n.prof.SFTP {
		if !c.Enabled {
			continue
		}
		s, err := sftp.Start(n.ctx, sftp.Config{
			SFTP: c, Accounts: set, Drive: driveFor, Space: n.sftpSpace,
			TempDir:   filepath.Join(n.prof.Node.StateDir, "tmp"),
			Logger:    n.log,
			OnSession: n.metrics.SFTPSessions.Inc,
		})
		if err != nil {
			return addrs, err
		}
		n.onStop(func() { s.Close() })
		addrs = append(addrs, s.Addr())
	}
	return addrs, nil
}

// sftpSpace is what statvfs (`df`) reports: the free space the storage
// servers announce, as user data (K/N of it, since every byte is stored
// N/K times). The grid does not announce capacity, so the total is the
// free space too. The same figure bounds a file's size (the frontend
// refuses a file larger than it); Raw, K and N word that refusal.
//
// Servers whose free space is unknown are left out (announcedFree): one
// that cannot read its own refuses new shares anyway. When no server's is
// known, every figure is 0, which file managers (GLib's GIO: available
// and free both 0) take as unknown, not as full, and the frontend as no
// limit on a file's size; GNU df lists such a mount only when named.
func (n *Node) sftpSpace(context.Context) (sftp.Space, error) {
	free, _ := announcedFree(n.Servers())
	raw := free
	k, nn := uint64(n.prof.Client.Shares.K), uint64(n.prof.Client.Shares.N)
	if k > 0 && nn > 0 {
		free = free / nn * k
	}
	return sftp.Space{Total: free, Free: free, Raw: raw, K: int(k), N: int(nn)}, nil
}

// announcedFree sums the free space the storage servers announced, over
// those whose figure is known (introducer.Server.Free: announced, and
// not introducer.FreeSpaceUnknown), and counts them. The sum saturates
// at the largest uint64 rather than wrap.
func announcedFree(servers []introducer.Server) (sum uint64, known int) {
	for _, s := range servers {
		free, ok := s.Free()
		if !ok {
			continue
		}
		known++
		if free > math.MaxUint64-sum {
			sum = math.MaxUint64
			continue
		}
		sum += free
	}
	return sum, known
}
