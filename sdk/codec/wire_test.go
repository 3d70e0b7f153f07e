package codec

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorsCrossTheWire(t *testing.T) {
	for _, sentinel := range []error{ErrTooFewBlocks, ErrInvalidInput, ErrUnsupported} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			orig := fmt.Errorf("decode segment 3: %w", sentinel)
			got := fromStatus("decode", toStatus(orig, 2))
			if !errors.Is(got, sentinel) {
				t.Fatalf("errors.Is lost: %v", got)
			}
			if got.Error() != orig.Error() {
				t.Fatalf("message changed: %q, want %q", got, orig)
			}
		})
	}
	plain := fromStatus("encode", toStatus(errors.New("disk on fire"), 0))
	for _, s := range []error{ErrTooFewBlocks, ErrInvalidInput, ErrUnsupported} {
		if errors.Is(plain, s) {
			t.Fatalf("plain error became %v", s)
		}
	}
}
