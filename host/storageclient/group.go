package storageclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// maxBatchPuts is the most puts one PutSharesBatch carries (the server's
// MaxPutsPerBatch).
const maxBatchPuts = 64

// maxBatchMsg bounds a PutSharesBatch message as encoded: the server
// takes messages of up to 1 MiB + 64 KiB, and the framing of many small
// shares (255 of 64 bytes a put, 64 puts) passes that slack although
// their data is within 1 MiB.
const maxBatchMsg = MaxPutBytes + 32<<10

// putGroup lets the PutShares calls of a client to one server that would
// wait behind its call in flight go as one PutSharesBatch: at most one
// put call is in flight per client; puts made meanwhile queue, and when
// the call ends they go together in the next one. A put finding no call
// in flight goes at once, as a PutShares: a lone upload waits no more
// than before. The server stores a batch's puts all at once, so they
// still share its backend's group commit.
type putGroup struct {
	mu       sync.Mutex
	inFlight bool
	queue    []*queuedPut
	noBatch  atomic.Bool // the server answered PutSharesBatch UNIMPLEMENTED
	batches  atomic.Int64
	batched  atomic.Int64 // puts sent in batches of two or more
}

// queuedPut is one put waiting for the next call, and where its answer
// goes (buffered: the caller may have left).
type queuedPut struct {
	ctx  context.Context
	req  *pb.PutSharesRequest
	size int64 // bytes of share data
	msg  int   // bytes of the request as encoded, with its framing in a batch
	done chan putAnswer
}

type putAnswer struct {
	r   *PutResult
	err error
}

// PutSharesGrouped is PutShares, sent together with the other puts this
// client makes to the server while a call of them is in flight (one
// PutSharesBatch), or alone when none is. Its answer and errors are
// those of PutShares; a caller whose ctx ends stops waiting, and its put
// may still be stored (as with a PutShares given up). A server that
// predates PutSharesBatch gets each put as a PutShares.
func (c *Client) PutSharesGrouped(ctx context.Context, index [storage.StorageIndexSize]byte, size int64, shares map[uint32][]byte, leaseSecret []byte) (*PutResult, error) {
	req, err := putRequest(index, size, shares, leaseSecret)
	if err != nil {
		return nil, err
	}
	g := &c.group
	if g.noBatch.Load() {
		return c.putShares(ctx, req) // an older server: no batches, no queue
	}
	g.mu.Lock()
	if !g.inFlight {
		g.inFlight = true
		g.mu.Unlock()
		r, err := c.putShares(ctx, req)
		c.putDone()
		return r, err
	}
	q := &queuedPut{ctx: ctx, req: req, size: size * int64(len(shares)), msg: proto.Size(req) + 8, done: make(chan putAnswer, 1)}
	g.queue = append(g.queue, q)
	g.mu.Unlock()
	select {
	case a := <-q.done:
		return a.r, a.err
	case <-ctx.Done():
		return nil, wrap(putObj(index[:]), ctx.Err())
	}
}

// putDone ends the call in flight: the puts queued meanwhile go next, on
// a goroutine of their own (the caller returns its answer now).
func (c *Client) putDone() {
	g := &c.group
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.inFlight = false
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	workers.Go(c.drainPuts)
}

// drainPuts sends the queued puts, as many as one call carries at a
// time, until none is left.
func (c *Client) drainPuts() {
	g := &c.group
	for {
		g.mu.Lock()
		var batch []*queuedPut
		var bytes int64
		var msg int
		for len(g.queue) > 0 && len(batch) < maxBatchPuts &&
			(len(batch) == 0 || bytes+g.queue[0].size <= MaxPutBytes && msg+g.queue[0].msg <= maxBatchMsg) {
			q := g.queue[0]
			g.queue[0] = nil
			g.queue = g.queue[1:]
			if q.ctx.Err() != nil {
				q.done <- putAnswer{nil, wrap(putObj(q.req.StorageIndex), q.ctx.Err())}
				continue // its caller left: not sent
			}
			batch = append(batch, q)
			bytes += q.size
			msg += q.msg
		}
		if len(batch) == 0 {
			g.inFlight = false
			g.queue = nil
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		c.sendPuts(batch)
	}
}

// sendPuts sends puts in one call (a PutShares for one) and answers each.
func (c *Client) sendPuts(batch []*queuedPut) {
	if len(batch) == 1 {
		r, err := c.putShares(batch[0].ctx, batch[0].req)
		batch[0].done <- putAnswer{r, err}
		return
	}
	if c.group.noBatch.Load() {
		var wg sync.WaitGroup
		for _, q := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.putShares(q.ctx, q.req)
				q.done <- putAnswer{r, err}
			}()
		}
		wg.Wait()
		return
	}
	// The call lasts as long as the longest-waiting caller allows, and
	// ends once every caller has left (a server that hangs holds no queue
	// behind it for longer than its callers wait); a put whose caller
	// left while others wait is stored anyway (an extra copy).
	var deadline time.Time
	req := &pb.PutSharesBatchRequest{Puts: make([]*pb.PutSharesRequest, len(batch))}
	for i, q := range batch {
		req.Puts[i] = q.req
		d, ok := q.ctx.Deadline()
		if !ok {
			d = time.Now().Add(c.opts.CallTimeout)
		}
		deadline = later(deadline, d)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(batch)))
	for _, q := range batch {
		stop := context.AfterFunc(q.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	ctx, cancel2 := c.call(ctx)
	defer cancel2()
	resp, err := c.rpc.PutSharesBatch(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		c.group.noBatch.Store(true) // an older server: puts one by one from now on
		c.sendPuts(batch)
		return
	}
	c.group.batches.Add(1)
	c.group.batched.Add(int64(len(batch)))
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = status.Errorf(codes.Internal, "%d answers to %d puts", len(resp.GetResults()), len(batch))
	}
	for i, q := range batch {
		if err != nil {
			q.done <- putAnswer{nil, wrap(putObj(q.req.StorageIndex), err)}
			continue
		}
		res := resp.Results[i]
		if code := codes.Code(res.GetCode()); code != codes.OK {
			q.done <- putAnswer{nil, wrap(putObj(q.req.StorageIndex), status.Error(code, res.GetMessage()))}
			continue
		}
		if res.GetResponse() == nil {
			q.done <- putAnswer{nil, wrap(putObj(q.req.StorageIndex), errors.New("batch answered no result"))}
			continue
		}
		q.done <- putAnswer{putResult(res.Response), nil}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// PutBatches reports how many PutSharesBatch calls this client made and
// how many puts they carried (tests, metrics).
func (c *Client) PutBatches() (calls, puts int64) {
	return c.group.batches.Load(), c.group.batched.Load()
}
