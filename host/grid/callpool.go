package grid

import (
	"time"

	"github.com/tarnfs/tarn/host/gopool"
)

// calls runs the per-server calls of small uploads (putRound) on workers
// that keep their grown stacks between calls (host/gopool); shared by
// every Client of the process: a worker holds nothing of a client
// between calls.
var calls = gopool.New(64, time.Second)
