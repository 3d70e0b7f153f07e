package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tarnfs/tarn/host/metrics"
	"github.com/tarnfs/tarn/host/vdrive"
)

// A client node's write-behind of directory links (vdrive.Behind, the
// Config.Store of the node) in GET /v1/status, on the page and in
// /metrics: links acknowledged and not yet made, how old the oldest is,
// folders whose changes fail, links kept in the failed links
// (docs/monitoring.md, docs/operations.md).

// behindStats is what a Store that writes links behind offers.
type behindStats interface {
	Stats() vdrive.BehindStats
}

// WriteBehindStatus is the write-behind's figures in GET /v1/status.
type WriteBehindStatus struct {
	vdrive.BehindStats
	// OldestAge is how long the oldest pending link has waited, seconds
	// (0: none pending).
	OldestAge float64 `json:"oldest_age_seconds"`
}

// writeBehindStatus is the Store's write-behind figures, nil without one.
func writeBehindStatus(store vdrive.Store) *WriteBehindStatus {
	b, ok := store.(behindStats)
	if !ok {
		return nil
	}
	st := &WriteBehindStatus{BehindStats: b.Stats()}
	if !st.Oldest.IsZero() {
		st.OldestAge = max(0, time.Since(st.Oldest).Seconds())
	}
	return st
}

// registerWriteBehind adds the write-behind's figures to /metrics.
func registerWriteBehind(cfg Config) error {
	if cfg.Metrics == nil {
		return nil
	}
	if _, ok := cfg.Store.(behindStats); !ok {
		return nil
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	fams := []metrics.Family{
		{Name: "writebehind_pending_links", Help: "Directory links acknowledged (file answered as stored) and not yet made.", Type: g},
		{Name: "writebehind_pending_folders", Help: "Folders with links not yet made.", Type: g},
		{Name: "writebehind_oldest_pending_seconds", Help: "How long the oldest link not yet made has waited (0: none).", Type: g},
		{Name: "writebehind_failing_folders", Help: "Folders whose last change of pending links failed; retried until made.", Type: g},
		{Name: "writebehind_failing_links", Help: "Links waiting in folders whose changes fail.", Type: g},
		{Name: "writebehind_failed_links", Help: "Lines in failed-links.jsonl: links that cannot be made, for the operator to re-link.", Type: g},
		{Name: "writebehind_failed_links_total", Help: "Links put in failed-links.jsonl since start.", Type: c},
		{Name: "writebehind_change_failures_total", Help: "Failed folder changes of pending links since start.", Type: c},
	}
	return cfg.Metrics.Func(fams, func(emit metrics.Emit) {
		st := writeBehindStatus(cfg.Store)
		if st == nil {
			return
		}
		emit("writebehind_pending_links", float64(st.Pending))
		emit("writebehind_pending_folders", float64(st.Folders))
		emit("writebehind_oldest_pending_seconds", st.OldestAge)
		emit("writebehind_failing_folders", float64(st.Failing))
		emit("writebehind_failing_links", float64(st.FailingLinks))
		emit("writebehind_failed_links", float64(st.Failed))
		emit("writebehind_failed_links_total", float64(st.FailedTotal))
		emit("writebehind_change_failures_total", float64(st.ChangeFailures))
	})
}
