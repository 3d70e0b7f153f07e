package main

import (
	"fmt"

	"github.com/tarnfs/tarn/host/api"
)

// sharesHeld says what a storage server holds: "12 shares held (3.0 MiB)",
// "counting… 1200 shares held so far (300 MiB)" while its start count
// runs.
func sharesHeld(s *api.StorageStatus) string {
	if s.HeldCounting {
		return fmt.Sprintf("counting… %d shares held so far (%s)", s.SharesHeld, humanBytes(s.BytesHeld))
	}
	return fmt.Sprintf("%d shares held (%s)", s.SharesHeld, humanBytes(s.BytesHeld))
}
