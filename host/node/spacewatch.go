package node

import (
	"context"
	"time"

	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/sdk/storage"
)

// spaceWatch re-announces the storage server to every introducer soon
// after its free space changes materially, and at once after it refuses
// a share for lack of space (introducer.SpaceWatch), instead of at the
// next 10-minute announcement. Its FreeSpace is what the publishers
// announce; run it once the publishers are made.
func (n *Node) spaceWatch(srv *storageserver.Server, backend storage.Backend, reserved int64, every time.Duration) *introducer.SpaceWatch {
	w := introducer.NewSpaceWatch(introducer.SpaceWatchConfig{
		Every: every,
		Free: func(ctx context.Context) (uint64, error) {
			sp, err := backend.Space(ctx)
			if err != nil {
				return 0, err
			}
			return uint64(max(sp.Free-reserved, 0)), nil
		},
		Kick: func() {
			for _, p := range n.pubs {
				p.pub.Kick()
			}
		},
	})
	srv.OnNoSpace(w.Refused)
	return w
}
