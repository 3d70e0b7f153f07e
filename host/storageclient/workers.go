package storageclient

import (
	"time"

	"github.com/tarnfs/tarn/host/gopool"
)

// workers runs a batch's drain (putDone) on a worker that keeps its
// grown stack between batches (host/gopool).
var workers = gopool.New(64, time.Second)
