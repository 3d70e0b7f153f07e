package vdrive

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Journals of older versions were bbolt files (oldJournalFile, bucket
// "links", keys big-endian sequence numbers). Every bbolt commit cost two
// fdatasyncs (its pages, then its meta page) and ~3x the CPU of one
// append; the first open of a node's state folder by this version
// copies the old journal's records into JournalFile, durably, and then
// removes it.

// oldJournalFile is the journal of versions before the append-only one.
const oldJournalFile = "links-journal.db"

// journalBucket held the pending links in oldJournalFile.
var journalBucket = []byte("links")

// readBoltJournal reads the records of an old journal at path.
func readBoltJournal(path string) (map[uint64][]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open old link journal %s: %w", path, err)
	}
	defer db.Close()
	recs := map[uint64][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(journalBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("key of %d bytes, want 8", len(k))
			}
			recs[binary.BigEndian.Uint64(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read old link journal %s: %w", path, err)
	}
	return recs, nil
}
