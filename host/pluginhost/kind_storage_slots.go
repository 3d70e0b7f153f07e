package pluginhost

import (
	"context"
	"errors"

	"github.com/tarnfs/tarn/sdk/storage"
)

// ListSlots lists the slot numbers of a storage index. A plugin built
// before the call existed answers with errors.ErrUnsupported, which is an
// answer, not a sign that the process died.
func (b *Storage) ListSlots(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	var l []uint32
	var unsupported error
	err := b.s.call(ctx, func(raw any) (err error) {
		l, err = backend(raw).ListSlots(ctx, index)
		if errors.Is(err, errors.ErrUnsupported) {
			unsupported, err = err, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if unsupported != nil {
		return nil, unsupported
	}
	return l, nil
}
