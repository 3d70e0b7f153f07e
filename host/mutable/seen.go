package mutable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tarnfs/tarn/host/cap"
)

// ErrRollback: the grid offers an older version of a slot than this client
// has already seen. A server (or several) serving stale shares cannot make
// a client go back.
var ErrRollback = errors.New("mutable: older than a version already seen")

// SeenStore remembers, per slot, the highest sequence number a client has
// read or written, for rollback protection. Implementations are safe for
// concurrent use.
type SeenStore interface {
	// Seen returns the highest sequence number recorded for the slot (0 if
	// none).
	Seen(si cap.StorageIndex) (uint64, error)
	// Record raises the slot's number to seq; a lower seq changes nothing.
	Record(si cap.StorageIndex, seq uint64) error
}

// MemorySeen is a SeenStore in memory.
type MemorySeen struct {
	mu sync.Mutex
	m  map[cap.StorageIndex]uint64
}

var _ SeenStore = (*MemorySeen)(nil)

// NewMemorySeen returns an empty store.
func NewMemorySeen() *MemorySeen { return &MemorySeen{m: map[cap.StorageIndex]uint64{}} }

// Seen implements SeenStore.
func (s *MemorySeen) Seen(si cap.StorageIndex) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[si], nil
}

// Record implements SeenStore.
func (s *MemorySeen) Record(si cap.StorageIndex, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.m[si] {
		s.m[si] = seq
	}
	return nil
}

// FileSeen is a SeenStore kept in a bbolt file (16-byte storage index ->
// 8-byte sequence number), so that protection survives a client restart.
type FileSeen struct {
	db *bolt.DB

	// mu guards done: numbers known to be on disk already, so that
	// recording a number not higher costs no write transaction (each
	// commit is an fdatasync, and every slot read and write records).
	mu   sync.Mutex
	done map[cap.StorageIndex]uint64
}

var _ SeenStore = (*FileSeen)(nil)

var seenBucket = []byte("mutable-seen-v1")

// OpenFileSeen opens (or creates) the store at path. Close it when done.
func OpenFileSeen(path string) (*FileSeen, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open seen-versions store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(seenBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open seen-versions store %s: %w", path, err)
	}
	return &FileSeen{db: db, done: map[cap.StorageIndex]uint64{}}, nil
}

// Close closes the file.
func (s *FileSeen) Close() error { return s.db.Close() }

// Seen implements SeenStore.
func (s *FileSeen) Seen(si cap.StorageIndex) (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(seenBucket).Get(si[:])
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("seen version of %s: record of %d bytes, want 8", si, len(v))
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, err
}

// seenMemo bounds FileSeen's memo of numbers on disk; when full it starts
// over (a miss costs a read transaction, not a write).
const seenMemo = 1 << 16

// Record implements SeenStore. A number not higher than the one on disk
// costs no write (and no fdatasync).
func (s *FileSeen) Record(si cap.StorageIndex, seq uint64) error {
	s.mu.Lock()
	known, ok := s.done[si]
	s.mu.Unlock()
	if ok && known >= seq {
		return nil
	}
	// A malformed record on disk is overwritten, as the write below does.
	cur, err := s.Seen(si)
	if err != nil || cur < seq {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(seenBucket)
			if v := b.Get(si[:]); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
				return nil
			}
			return b.Put(si[:], binary.BigEndian.AppendUint64(nil, seq))
		}); err != nil {
			return err
		}
		cur = seq
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.done) >= seenMemo {
		s.done = map[cap.StorageIndex]uint64{}
	}
	if cur > s.done[si] {
		s.done[si] = cur
	}
	return nil
}
