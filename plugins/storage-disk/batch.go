//go:build unix

package storagedisk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

var _ storage.BatchPutter = (*Disk)(nil)

// PutBatch stores several whole shares in one call (storage.BatchPutter),
// each with Put's checks and outcome. The shares that go to the pack are
// claimed, appended one after the other under one hold of the append
// lock, and made durable by one group commit; then every one of them is
// answered. Larger shares (or all, with "pack": false) take Put's file
// path meanwhile. Nothing is answered as stored before its bytes are
// synced.
func (d *Disk) PutBatch(ctx context.Context, puts []storage.PutItem) ([]error, error) {
	if err := storage.CheckBatch(puts); err != nil {
		return nil, err
	}
	errs := make([]error, len(puts))
	packing := !d.opts.NoPack && d.pack != nil
	var small, large []int
	var free int64
	for i, p := range puts {
		if !packing || len(p.Data) > d.packMax {
			large = append(large, i)
			continue
		}
		if d.packed(p.Ref) {
			errs[i] = fmt.Errorf("put share %s: %w", p.Ref, storage.ErrExists)
			continue
		}
		if small == nil {
			sp, err := d.Space(ctx)
			if err != nil {
				return nil, fmt.Errorf("put batch of %d shares: %w", len(puts), err)
			}
			free = sp.Free
		}
		n := int64(len(p.Data))
		if n+packDeleteRoom > free {
			// A share that exists is answered as such, as by Put (the
			// claim below checks share files for the others).
			if _, err := os.Lstat(d.sharePath(p.Ref)); err == nil {
				errs[i] = fmt.Errorf("put share %s: %w", p.Ref, storage.ErrExists)
				continue
			}
			errs[i] = fmt.Errorf("put share %s of %d bytes with %d free, %d kept for deletes: %w", p.Ref, n, max(free, 0), packDeleteRoom, storage.ErrNoSpace)
			continue
		}
		free -= n + recHeaderLen
		small = append(small, i)
	}
	var wg sync.WaitGroup
	for _, i := range large {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Put(ctx, puts[i].Ref, puts[i].Data)
		}()
	}
	if len(small) > 0 {
		d.putPackedMany(puts, small, errs)
	}
	wg.Wait()
	return errs, nil
}

// putPackedMany is putPacked for the shares puts[i], i in which: each is
// claimed under its index's stripe lock (refused if it exists in either
// layout, or comes twice), then they are appended together and wait for
// one sync.
func (d *Disk) putPackedMany(puts []storage.PutItem, which []int, errs []error) {
	refs := make([]storage.Ref, 0, len(which))
	datas := make([][]byte, 0, len(which))
	at := make([]int, 0, len(which))
	// Every stripe of the batch is held while it claims: a claim held
	// while waiting for the next stripe would deadlock with a compaction,
	// which holds every stripe and waits for the pending claims.
	indexes := make([][storage.StorageIndexSize]byte, len(which))
	for k, i := range which {
		indexes[k] = puts[i].Ref.Index
	}
	unlock := d.lockStripes(indexes)
	for _, i := range which {
		ref := puts[i].Ref
		_, err := os.Lstat(d.sharePath(ref))
		if err == nil || !d.pack.claim(ref) {
			errs[i] = fmt.Errorf("put share %s: %w", ref, storage.ErrExists)
			continue
		}
		refs = append(refs, ref)
		datas = append(datas, puts[i].Data)
		at = append(at, i)
	}
	unlock()
	for _, ref := range refs {
		packClaimed(ref)
	}
	if len(refs) == 0 {
		return
	}
	locs, aerrs := d.pack.appendMany(recKindShare, refs, datas)
	for k, i := range at {
		ref := refs[k]
		if err := aerrs[k]; err != nil {
			d.pack.settle(ref, nil)
			if errors.Is(err, unix.ENOSPC) {
				err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
			}
			errs[i] = fmt.Errorf("put share %s: %w", ref, err)
			continue
		}
		packAppended(ref)
		d.pack.settle(ref, &locs[k])
	}
}

// appendMany is append for several records: they are written one after
// the other under one hold of amu (so their sequence numbers follow each
// other), and it returns once one group commit covered the last of them,
// with each record's location or error. Because every sync round reads
// the count of records written under amu, a round covers all of them or
// none: they are durable, or failed, together.
func (p *packStore) appendMany(kind byte, refs []storage.Ref, datas [][]byte) ([]packLoc, []error) {
	locs := make([]packLoc, len(refs))
	errs := make([]error, len(refs))
	written := make([]bool, len(refs))
	var last uint64
	p.amu.Lock()
	for i, ref := range refs {
		loc, seq, err := p.writeRecord(kind, ref, datas[i])
		if err != nil {
			errs[i] = err
			continue
		}
		last = seq
		locs[i], written[i] = loc, true
	}
	p.amu.Unlock()
	if last == 0 {
		return locs, errs
	}
	if err := p.waitDurable(last); err != nil {
		for i := range refs {
			if !written[i] {
				continue
			}
			if kind == recKindShare {
				p.mu.Lock()
				p.live[locs[i].pack] -= locs[i].recLen()
				p.mu.Unlock()
			}
			errs[i] = fmt.Errorf("sync pack %s: %w", packName(locs[i].pack), err)
		}
	}
	return locs, errs
}
