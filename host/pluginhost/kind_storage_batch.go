package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/sdk/storage"
)

var _ storage.BatchPutter = (*Storage)(nil)

// PutBatch stores several whole shares with one plugin call, each with
// its own outcome. A plugin that predates PutBatch answers with
// errors.ErrUnsupported and a call over the limits with
// storage.ErrBatchLimit: answers, not signs that the process died;
// storage.PutBatch then puts the shares one by one (or splits them).
func (b *Storage) PutBatch(ctx context.Context, puts []storage.PutItem) ([]error, error) {
	var errs []error
	var answer error
	err := b.s.call(ctx, func(raw any) error {
		bp, ok := raw.(storage.BatchPutter)
		if !ok {
			answer = fmt.Errorf("put batch of %d shares: %w", len(puts), errors.ErrUnsupported)
			return nil
		}
		var err error
		errs, err = bp.PutBatch(ctx, puts)
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, storage.ErrBatchLimit) {
			answer, err = err, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if answer != nil {
		return nil, answer
	}
	return errs, nil
}
