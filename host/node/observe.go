package node

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/metrics"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/sdk/transport"
)

// This file is what the node shows of itself: GET /v1/status and the
// page (status), the last minute's rates (rateCounters) and /metrics
// (registerMetrics, countingTransport). It reads the counters the
// services keep (grid.Stats, storageserver.Stats, the plugin host, the
// introducer) rather than adding its own to them.

// spaceTimeout bounds the storage plugin's Space call of a status read.
const spaceTimeout = 2 * time.Second

// status fills GET /v1/status.
func (n *Node) status(ctx context.Context) api.Status {
	p := n.prof
	st := api.Status{
		NodeID: n.info.NodeID, Name: p.Node.Name, Roles: n.info.Roles, Grid: p.Grid.Name, Version: Version,
	}
	now := time.Now()
	if n.client != nil {
		st.Shares = api.Shares{K: p.Client.Shares.K, H: p.Client.Shares.H, N: p.Client.Shares.N}
		health := n.client.ServerHealth()
		for _, s := range n.Servers() {
			h := health[s.NodeID]
			seen := n.seen.get(s.NodeID, s.Sequence)
			// An announcement in force (or a static entry) is what the
			// client dials, unless its last contact was a fault (a dead
			// host stays announced until its record expires) and the
			// server has not announced itself since (a restart does).
			failing := h.Failing() && h.LastFailure.After(seen)
			// Its link ended from its side (the process died or stopped)
			// since it last answered and announced itself: not usable,
			// though no operation has failed on it yet (links.go).
			lostAt, lostErr := n.links.lost(s.NodeID)
			if !failing && !lostAt.IsZero() && lostAt.After(seen) && lostAt.After(h.LastAnswer) {
				failing = true
				h.LastFailure, h.LastError = lostAt, "link lost: "+lostErr
			}
			// A cached server (no introducer answered since the start) is
			// dialled as a static one is, its announcement's expiry aside.
			ss := api.ServerStatus{
				NodeID: s.NodeID, Nickname: s.Nickname, Static: s.Static, Cached: s.Cached, FreeSpace: s.FreeSpace,
				Version: s.Version, ExpiresAt: s.ExpiresAt, LastSeen: seen,
				Connected:  (s.Static || s.Cached || now.Before(s.ExpiresAt)) && !failing,
				LastAnswer: h.LastAnswer, LastFailure: h.LastFailure,
			}
			if failing {
				ss.LastError = h.LastError
			}
			if len(s.Addresses) > 0 {
				ss.Address = s.Addresses[0]
			}
			st.Servers = append(st.Servers, ss)
		}
		st.GridStats = n.client.Stats()
	} else if n.intro != nil {
		// An introducer's servers are the announcements it holds.
		for _, r := range n.intro.Records() {
			ss := api.ServerStatus{
				NodeID: r.NodeID, Nickname: r.Nickname, FreeSpace: r.FreeSpace, Version: r.Version,
				LastSeen: r.IssuedAt, ExpiresAt: r.ExpiresAt, Connected: now.Before(r.ExpiresAt),
			}
			if len(r.Addresses) > 0 {
				ss.Address = r.Addresses[0]
			}
			st.Servers = append(st.Servers, ss)
		}
	}
	st.IntroducerLinks = n.introducerLinks()
	if n.intro != nil {
		is := n.intro.Stats()
		st.Introducer = &api.IntroducerStatus{Held: is.Held, Accepted: is.Accepted, Dropped: is.Dropped}
	}
	if n.storage != nil {
		ss := n.storage.Stats()
		sst := &api.StorageStatus{
			Reserved: int64(p.Storage.ReservedSpace), OpenUploads: ss.OpenUploads, OpenBytes: ss.OpenBytes,
			SharesSealed: ss.Sealed, UploadsAborted: ss.Aborted + ss.IdleAborted,
			CorruptionAdvice: ss.CorruptionAdvice, CorruptRemoved: ss.CorruptRemoved,
			Requests: n.metrics.StorageCalls(),
		}
		held := n.storage.Held()
		sst.SharesHeld, sst.BytesHeld, sst.HeldCounting = held.Shares, held.Bytes, held.Counting
		if held.Err != nil {
			sst.HeldError = held.Err.Error()
		}
		sctx, cancel := context.WithTimeout(ctx, spaceTimeout)
		sp, err := n.backend.Space(sctx)
		cancel()
		if err != nil {
			sst.SpaceError = err.Error()
		} else {
			sst.SpaceTotal, sst.SpaceFree = sp.Total, sp.Free
		}
		st.Storage = sst
	}
	if n.plugins != nil {
		for _, ps := range n.plugins.List() {
			st.Plugins = append(st.Plugins, api.PluginStatus{
				Kind: string(ps.Kind), Name: ps.Name, Version: ps.Version, Pid: ps.Pid, Health: ps.Health,
				Restarts: ps.Restarts, Started: ps.Started, LastErr: ps.LastErr,
			})
		}
	}
	return st
}

// rateCounters are the counters whose last-minute rates the page shows:
// the grid client's (every upload and download, whichever frontend asked)
// and the storage server's.
func (n *Node) rateCounters() map[string]float64 {
	out := map[string]float64{}
	if n.client != nil {
		gs := n.client.Stats()
		out["uploads"] = float64(gs.Uploads)
		out["downloads"] = float64(gs.Downloads)
		out["failed uploads and downloads"] = float64(gs.UploadsFailed + gs.DownloadsFailed)
		out["share bytes sent"] = float64(gs.BytesUploaded)
		out["share bytes received"] = float64(gs.BytesDownloaded)
	}
	if n.storage != nil {
		out["shares sealed"] = float64(n.storage.Stats().Sealed)
		var calls int64
		for _, c := range n.metrics.StorageCalls() {
			calls += c
		}
		out["storage calls"] = float64(calls)
	}
	return out
}

// registerMetrics adds to the node's registry what is read at scrape
// time: the node itself, its plugins, the grid client's and the storage
// server's counters. docs/monitoring.md lists the names.
func (n *Node) registerMetrics() error {
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	fams := []metrics.Family{
		{Name: "node_info", Help: "The node: name, id, roles and version (value 1).", Type: g, Labels: []string{"name", "node_id", "roles", "version"}},
		{Name: "node_start_time_seconds", Help: "When the node started, Unix seconds.", Type: g},
		{Name: "plugin_up", Help: "1 when the plugin process is healthy, else 0.", Type: g, Labels: []string{"kind", "name"}},
		{Name: "plugin_restarts_total", Help: "Restarts of the plugin process by the node.", Type: c, Labels: []string{"kind", "name"}},
		{Name: "servers_known", Help: "Storage servers the client (or introducer) knows.", Type: g},
		{Name: "servers_connected", Help: "Storage servers with an announcement in force (or static).", Type: g},
		{Name: "uploads_total", Help: "Uploads by the grid client (every frontend), by result.", Type: c, Labels: []string{"result"}},
		{Name: "downloads_total", Help: "Downloads (file opens) by the grid client, by result.", Type: c, Labels: []string{"result"}},
		{Name: "literal_uploads_total", Help: "Uploads small enough to be kept in their cap.", Type: c},
		{Name: "share_bytes_total", Help: "Share bytes the grid client sent to and received from servers.", Type: c, Labels: []string{"direction"}},
		{Name: "client_shares_total", Help: "Shares the grid client placed: sealed (written) or existing (already there).", Type: c, Labels: []string{"state"}},
		{Name: "corrupt_shares_total", Help: "Shares that failed a hash check on download.", Type: c},
		{Name: "errors_total", Help: "Failed requests and operations of the grid client, by kind.", Type: c, Labels: []string{"kind"}},
		{Name: "server_dials_total", Help: "Connections the grid client opened to servers, by result.", Type: c, Labels: []string{"result"}},
		{Name: "storage_shares_sealed_total", Help: "Shares this storage server wrote and sealed.", Type: c},
		{Name: "storage_uploads_aborted_total", Help: "Share uploads aborted, by the client or for idleness.", Type: c, Labels: []string{"reason"}},
		{Name: "storage_corruption_advisories_total", Help: "Corruption advisories this storage server received.", Type: c},
		{Name: "storage_corrupt_removed_total", Help: "Advised shares checked, found corrupt and removed.", Type: c},
		{Name: "storage_open_uploads", Help: "Share uploads in progress.", Type: g},
		{Name: "storage_shares_held", Help: "Shares this storage server holds (partial while its start count runs).", Type: g},
		{Name: "storage_held_bytes", Help: "Bytes of the shares this storage server holds (partial while its start count runs).", Type: g},
		{Name: "storage_space_bytes", Help: "The storage backend's space: total and free.", Type: g, Labels: []string{"kind"}},
		{Name: "introducer_announcements", Help: "Announcements the introducer holds.", Type: g},
		{Name: "introducer_connected", Help: "1 while the node's link to the introducer is up (subscriber: its list arrived; publisher: its announcement was taken), else 0.", Type: g, Labels: []string{"introducer", "role"}},
		{Name: "introducer_refused", Help: "1 while the introducer refuses this node (another grid secret or grid name), else 0.", Type: g, Labels: []string{"introducer", "role"}},
		{Name: "servers_cached", Help: "Storage servers the client knows only from its cache (no introducer answered since start).", Type: g},
		{Name: "servers_free_space_bytes", Help: "Free space the storage servers announce, summed over those whose figure is known (raw: new files take N/K times their size).", Type: g},
		{Name: "servers_space_unknown", Help: "Storage servers whose free space is unknown: never announced (static), or announced unknown (they cannot read theirs).", Type: g},
	}
	roles := strings.Join(n.info.Roles, ",")
	return n.metrics.Func(fams, func(emit metrics.Emit) {
		emit("node_info", 1, n.prof.Node.Name, n.info.NodeID, roles, Version)
		emit("node_start_time_seconds", float64(n.started.UnixNano())/1e9)
		for _, ps := range n.plugins.List() {
			up := 0.0
			if ps.Health == "ok" {
				up = 1
			}
			emit("plugin_up", up, string(ps.Kind), ps.Name)
			emit("plugin_restarts_total", float64(ps.Restarts), string(ps.Kind), ps.Name)
		}
		if n.client != nil || n.intro != nil {
			st := n.status(context.Background())
			conn := 0
			for _, s := range st.Servers {
				if s.Connected {
					conn++
				}
			}
			emit("servers_known", float64(len(st.Servers)))
			emit("servers_connected", float64(conn))
		}
		if n.client != nil {
			gs := n.client.Stats()
			emit("uploads_total", float64(gs.Uploads-gs.UploadsFailed), "ok")
			emit("uploads_total", float64(gs.UploadsFailed), "error")
			emit("downloads_total", float64(gs.Downloads-gs.DownloadsFailed), "ok")
			emit("downloads_total", float64(gs.DownloadsFailed), "error")
			emit("literal_uploads_total", float64(gs.LiteralUploads))
			emit("share_bytes_total", float64(gs.BytesUploaded), "sent")
			emit("share_bytes_total", float64(gs.BytesDownloaded), "received")
			emit("client_shares_total", float64(gs.SharesSealed), "sealed")
			emit("client_shares_total", float64(gs.SharesExisting), "existing")
			emit("corrupt_shares_total", float64(gs.CorruptShares))
			for k, v := range gs.Errors {
				emit("errors_total", float64(v), k)
			}
			emit("server_dials_total", float64(gs.Dials), "ok")
			emit("server_dials_total", float64(gs.DialFailures), "error")
			// An unknown figure is counted, not summed: it is the largest
			// uint64 on the wire (introducer.FreeSpaceUnknown).
			servers := n.Servers()
			free, known := announcedFree(servers)
			emit("servers_free_space_bytes", float64(free))
			emit("servers_space_unknown", float64(len(servers)-known))
		}
		if n.storage != nil {
			ss := n.storage.Stats()
			emit("storage_shares_sealed_total", float64(ss.Sealed))
			emit("storage_uploads_aborted_total", float64(ss.Aborted), "client")
			emit("storage_uploads_aborted_total", float64(ss.IdleAborted), "idle")
			emit("storage_corruption_advisories_total", float64(ss.CorruptionAdvice))
			emit("storage_corrupt_removed_total", float64(ss.CorruptRemoved))
			emit("storage_open_uploads", float64(ss.OpenUploads))
			held := n.storage.Held()
			emit("storage_shares_held", float64(held.Shares))
			emit("storage_held_bytes", float64(held.Bytes))
			ctx, cancel := context.WithTimeout(context.Background(), spaceTimeout)
			sp, err := n.backend.Space(ctx)
			cancel()
			if err == nil {
				emit("storage_space_bytes", float64(sp.Total), "total")
				emit("storage_space_bytes", float64(sp.Free), "free")
			}
		}
		if n.intro != nil {
			emit("introducer_announcements", float64(n.intro.Stats().Held))
		}
		for _, l := range n.introducerLinks() {
			emit("introducer_connected", b2f(l.Connected), l.URL, l.Role)
			emit("introducer_refused", b2f(l.Refused), l.URL, l.Role)
		}
		if n.list != nil {
			cached := 0
			for _, s := range n.list.Servers() {
				if s.Cached {
					cached++
				}
			}
			emit("servers_cached", float64(cached))
		}
	})
}

// countingTransport is the grid client's transport with each link's bytes
// counted under the storage server it reaches (metrics.ServerBytes,
// ServerConnections).
type countingTransport struct {
	transport.Transport
	n *Node
}

func (t *countingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	id := t.n.serverOf(addr)
	m := t.n.metrics
	m.ServerConnections.WithLabelValues(id).Inc()
	if id != "unknown" {
		t.n.links.opened(id)
		c = &trackedConn{Conn: c, links: t.n.links, id: id}
	}
	return &countingConn{Conn: c, sent: m.ServerBytes.WithLabelValues(id, "sent"), received: m.ServerBytes.WithLabelValues(id, "received")}, nil
}

// serverOf names the storage server a transport address belongs to: its
// node id, or "unknown" for an address no server announces.
func (n *Node) serverOf(addr string) string {
	for _, s := range n.Servers() {
		for _, a := range s.Addresses {
			na, err := nodelink.ParseAddr(a)
			if err != nil {
				continue
			}
			for _, ta := range na.Transports {
				if ta == addr {
					return s.NodeID
				}
			}
		}
	}
	return "unknown"
}

type countingConn struct {
	net.Conn
	sent, received prometheus.Counter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.received.Add(float64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.sent.Add(float64(n))
	}
	return n, err
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
