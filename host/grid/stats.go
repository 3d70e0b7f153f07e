package grid

import (
	"sync"
	"sync/atomic"
)

// Stats are a Client's counters since it was made, for status pages and
// metrics.
type Stats struct {
	Uploads, UploadsFailed     int64 // Upload calls, and those that failed
	Downloads, DownloadsFailed int64 // Open calls, and those that failed
	LiteralUploads             int64 // uploads kept in a lit cap
	BytesUploaded              int64 // share bytes sent to servers
	BytesDownloaded            int64 // share bytes read from servers
	SharesSealed               int64 // shares written and sealed
	SharesExisting             int64 // shares found already on servers and kept
	ServersFailed              int64 // servers dropped during an upload
	CorruptShares              int64 // shares that failed a hash check
	Dials, DialFailures        int64
	// SlotLists, SlotReads and SlotWrites count mutable-slot calls to
	// servers: ListSlots, ReadSlot and WriteSlot.
	SlotLists, SlotReads, SlotWrites int64
	// Errors counts failed requests and operations by kind (Kind*).
	Errors map[string]int64
}

type counters struct {
	uploads, uploadsFailed, downloads, downloadsFailed, literal  atomic.Int64
	bytesUp, bytesDown, sealed, existing, serversFailed, corrupt atomic.Int64
	dials, dialFailures                                          atomic.Int64
	slotLists, slotReads, slotWrites                             atomic.Int64

	mu     sync.Mutex
	errors map[string]int64
}

func (c *counters) errorOf(kind string) {
	if kind == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errors == nil {
		c.errors = map[string]int64{}
	}
	c.errors[kind]++
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	s := &c.stats
	out := Stats{
		Uploads: s.uploads.Load(), UploadsFailed: s.uploadsFailed.Load(),
		Downloads: s.downloads.Load(), DownloadsFailed: s.downloadsFailed.Load(),
		LiteralUploads: s.literal.Load(),
		BytesUploaded:  s.bytesUp.Load(), BytesDownloaded: s.bytesDown.Load(),
		SharesSealed: s.sealed.Load(), SharesExisting: s.existing.Load(),
		ServersFailed: s.serversFailed.Load(), CorruptShares: s.corrupt.Load(),
		Dials: s.dials.Load(), DialFailures: s.dialFailures.Load(),
		SlotLists: s.slotLists.Load(), SlotReads: s.slotReads.Load(), SlotWrites: s.slotWrites.Load(),
		Errors: map[string]int64{},
	}
	s.mu.Lock()
	for k, v := range s.errors {
		out.Errors[k] = v
	}
	s.mu.Unlock()
	return out
}
