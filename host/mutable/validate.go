package mutable

import (
	"context"
	"fmt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/sdk/storage"
)

// ValidateSlotWrite is the storage server's check of every slot write
// (storageserver.Config.ValidateSlotWrite): it keeps anyone without a
// slot's write cap from changing it, and keeps a slot from going back to
// an older version. next must be a well-formed share whose public key
// owns the storage index (the index derives from the key's hash), whose
// share number is the slot number, whose header the key signed and whose
// block matches the signed root. When the writer replaces a value
// (current != nil) that is itself a valid share, next must have a higher
// sequence number, or be the very same version (a repair rewriting it). A
// current value that does not check (corrupt) may be replaced by any
// valid share.
//
// Every slot on a server running this check is a mutable-file share.
func ValidateSlotWrite(_ context.Context, ref storage.Ref, current, next []byte) error {
	s, err := ParseShare(next)
	if err != nil {
		return fmt.Errorf("slot %s: %w", ref, err)
	}
	pkh := s.PublicKeyHash()
	if cap.MutableStorageIndexOf(pkh) != cap.StorageIndex(ref.Index) {
		return fmt.Errorf("slot %s: %w: public key does not own this storage index", ref, ErrBadSignature)
	}
	if uint32(s.Num) != ref.Num {
		return fmt.Errorf("slot %s: share number %d in slot %d", ref, s.Num, ref.Num)
	}
	if err := s.Verify(pkh); err != nil {
		return fmt.Errorf("slot %s: %w", ref, err)
	}
	if current == nil {
		return nil
	}
	cur, err := VerifyShare(pkh, current)
	if err != nil {
		return nil // a corrupt value: any valid version may replace it
	}
	switch {
	case s.Header.Seq > cur.Header.Seq:
		return nil
	case s.Header.Seq == cur.Header.Seq && s.Header.ID() == cur.Header.ID():
		return nil
	}
	return fmt.Errorf("slot %s: version %d may not replace version %d", ref, s.Header.Seq, cur.Header.Seq)
}
