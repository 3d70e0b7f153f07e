package node

import (
	"context"
	"crypto/ed25519"
	"math"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/frontends/sftp"
	"github.com/tarnfs/tarn/frontends/webdav"
	"github.com/tarnfs/tarn/host/introducer"
)

// TestSpaceSumsLeaveUnknownOut: df (statvfs over SFTP) and the WebDAV
// quota sum the free space of the servers whose figure is known: a
// server that cannot read its own (it announces the largest figure) or
// was never announced (static) is left out (before, one unknown server
// wrapped the sum: 60 GiB less a byte; three showed about 16 EiB x K/N).
// With no figure
// known, statvfs says 0 everywhere (read as unknown by file managers, no
// size limit in the frontend) and the quota is left out (an error).
func TestSpaceSumsLeaveUnknownOut(t *testing.T) {
	const gib = 1 << 30
	unknown := introducer.FreeSpaceUnknown
	cases := []struct {
		name   string
		live   []uint64 // announced figures
		static int      // servers never announced
		raw    uint64   // the sum statvfs words its limit with
		quota  int64    // -1: no quota
	}{
		{name: "one unknown among known", live: []uint64{30 * gib, unknown, 30 * gib}, raw: 60 * gib, quota: 40 * gib},
		{name: "all unknown", live: []uint64{unknown, unknown, unknown}, raw: 0, quota: -1},
		{name: "never announced and one known", live: []uint64{9 * gib}, static: 2, raw: 9 * gib, quota: 6 * gib},
		{name: "never announced only", static: 3, raw: 0, quota: -1},
		{name: "a full server is known", live: []uint64{0, unknown}, raw: 0, quota: 0},
		{name: "sum past the largest figure saturates", live: []uint64{1 << 63, 1 << 63, 5}, raw: math.MaxUint64, quota: math.MaxInt64},
		{name: "no servers", raw: 0, quota: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var static []introducer.Server
			for i := range tc.static {
				static = append(static, introducer.Server{NodeID: "static-" + string(rune('a'+i)), Static: true,
					Addresses: []string{"tarn://saaa@tcp:127.0.0.1:1"}})
			}
			list := introducer.NewServerList(static)
			for i, free := range tc.live {
				if err := list.Update(introducer.Record{NodeID: "live-" + string(rune('a'+i)), PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize),
					Addresses: []string{"tarn://laaa@tcp:127.0.0.1:1"}, FreeSpace: free, Sequence: 1, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			p := &conf.Profile{}
			p.Client.Shares = conf.Shares{K: 2, H: 3, N: 3}
			n := &Node{list: list, prof: p}

			sp, err := n.sftpSpace(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := sftp.Space{Raw: tc.raw, K: 2, N: 3}
			want.Free = tc.raw / 3 * 2
			want.Total = want.Free
			if sp != want {
				t.Errorf("statvfs space %+v, want %+v", sp, want)
			}

			q, err := n.webdavQuota(context.Background())
			switch {
			case tc.quota < 0 && err == nil:
				t.Errorf("quota %+v, want none (an error)", q)
			case tc.quota >= 0 && (err != nil || q != webdav.Quota{Available: tc.quota, Used: -1}):
				t.Errorf("quota %+v, %v; want %d available", q, err, tc.quota)
			}
		})
	}
}
