package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Limits of one PutBatch call. The bytes bound keeps a fallback message
// (shares in the message) well under gRPC's 4 MiB default; the count
// bounds the work one call may queue in a plugin.
const (
	MaxBatchPuts  = 1024
	MaxBatchBytes = 1 << 20
)

// ErrBatchLimit: a PutBatch call over MaxBatchPuts shares or
// MaxBatchBytes bytes; nothing of it was stored. storage.PutBatch splits
// its input so that it never sends one.
var ErrBatchLimit = errors.New("storage: put batch over the per-call limits")

// PutItem is one share of a batched put.
type PutItem struct {
	Ref  Ref
	Data []byte
}

// BatchPutter is an optional extra: a backend that stores several whole
// shares in one call, each as Put would, and gives each share its own
// outcome (errs[i] for puts[i]: nil when that share is durable and
// visible; ErrExists, ErrNoSpace, ... as Put's). A disk backend makes
// them durable together (one group commit) instead of one sync wait per
// share; a plugin client sends them in one RPC. err, when not nil, is the
// call's as a whole and errs is then nil: over the limits
// (ErrBatchLimit), or unsupported (wrapping errors.ErrUnsupported: a
// plugin built before the call; the caller puts them one by one), or a
// lost plugin (a share may then have been stored or not, as after a
// failed Put).
type BatchPutter interface {
	PutBatch(ctx context.Context, puts []PutItem) (errs []error, err error)
}

// CheckBatch refuses a batch over the per-call limits.
func CheckBatch(puts []PutItem) error {
	var total int64
	for _, p := range puts {
		total += int64(len(p.Data))
	}
	if len(puts) > MaxBatchPuts || total > MaxBatchBytes {
		return fmt.Errorf("put batch of %d shares, %d bytes: at most %d shares and %d bytes per call: %w",
			len(puts), total, MaxBatchPuts, MaxBatchBytes, ErrBatchLimit)
	}
	return nil
}

// PutBatch stores every share of puts and returns each one's outcome, in
// order: in as few BatchPutter calls as the limits allow when b is one
// that supports it, else with one Put per share, all at once (so a
// backend that group-commits still takes them together). A share larger
// than MaxBatchBytes goes by Put alone.
func PutBatch(ctx context.Context, b Backend, puts []PutItem) []error {
	errs := make([]error, len(puts))
	if len(puts) == 1 {
		errs[0] = Put(ctx, b, puts[0].Ref, puts[0].Data)
		return errs
	}
	bp, ok := b.(BatchPutter)
	if !ok {
		putEach(ctx, b, puts, errs)
		return errs
	}
	var alone []int // too large for any batch
	for start := 0; start < len(puts); {
		// The longest run from start within the limits.
		end, bytes := start, 0
		for end < len(puts) && end-start < MaxBatchPuts {
			n := len(puts[end].Data)
			if n > MaxBatchBytes {
				if end == start {
					alone = append(alone, end)
					start++
				}
				break
			}
			if bytes+n > MaxBatchBytes {
				break
			}
			bytes += n
			end++
		}
		if end <= start {
			continue
		}
		got, err := bp.PutBatch(ctx, puts[start:end])
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			// The rest go one by one, including what is left.
			putEach(ctx, b, puts[start:], errs[start:])
			start = len(puts) // alone holds only shares before start
			continue
		case err != nil:
			for i := start; i < end; i++ {
				errs[i] = err
			}
		case len(got) != end-start:
			for i := start; i < end; i++ {
				errs[i] = fmt.Errorf("put share %s: backend answered %d outcomes for %d shares", puts[i].Ref, len(got), end-start)
			}
		default:
			copy(errs[start:end], got)
		}
		start = end
	}
	for _, i := range alone {
		errs[i] = Put(ctx, b, puts[i].Ref, puts[i].Data)
	}
	return errs
}

// putEach puts every share with its own Put, all at once.
func putEach(ctx context.Context, b Backend, puts []PutItem, errs []error) {
	var wg sync.WaitGroup
	for i := range puts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Put(ctx, b, puts[i].Ref, puts[i].Data)
		}()
	}
	wg.Wait()
}
