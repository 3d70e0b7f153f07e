package vdrive

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The journal of links not yet made (write-behind, behind.go) is a bbolt
// file in the node's state folder: one record per link, keyed by a
// sequence number, so replay applies them in the order they were
// acknowledged. Every commit is fsynced before its callers return;
// concurrent commits are grouped: callers that arrive while one is
// under way are written together by the next one (one fsync for all).

// journalBucket holds the pending links.
var journalBucket = []byte("links")

// linkRecord is one journaled link: the folder's write cap, the entry's
// name, the child's read cap, and the metadata the answer promised.
type linkRecord struct {
	Dir   string            `json:"dir"`
	Name  string            `json:"name"`
	Cap   string            `json:"cap"`
	Size  int64             `json:"size"`
	Ctime time.Time         `json:"ctime"`
	Mtime time.Time         `json:"mtime"`
	Extra map[string]string `json:"extra,omitempty"`
	// Meta: the metadata was set (SetMetadata of the pending file) and is
	// linked as it is, not derived from a file the link replaces.
	Meta bool `json:"meta,omitempty"`
	// Root and Path: the read cap of the root of the drive that
	// acknowledged the link, and the folder's path under it ("/a/b");
	// the link is made only while the folder is still there
	// (behind_path.go). Empty in records of older versions: unchecked.
	Root string `json:"root,omitempty"`
	Path string `json:"path,omitempty"`
	// Prev is the cap the name held when the link was acknowledged (""
	// for none), and Also the caps of the earlier links of the name this
	// node had acknowledged and not yet made then: a replayed link is
	// made only over one of them (behind_replay.go). Prev is nil in
	// records of older versions: replayed as before, unchecked.
	Prev *string  `json:"prev,omitempty"`
	Also []string `json:"also,omitempty"`
	// Base (records with Meta only): prints (metaPrint) of the metadata
	// this node's own earlier links of the name and cap may have left in
	// the entry, and of the record's own; a replay that finds the entry
	// holding the cap makes the record's metadata only over one of them
	// (behind_replay.go). Nil in records of older versions: made as
	// before, unchecked.
	Base []string `json:"base,omitempty"`
	// At is when the link was acknowledged (zero in older records).
	At time.Time `json:"at,omitzero"`
	// Moved: where this node's own moves under way when the link was
	// acknowledged take Path (each next path in turn): after a crash
	// that lost the node's memory of its moves, the path check follows
	// them still (behind_path.go).
	Moved []string `json:"moved,omitempty"`
}

// journal is the link journal and its group commit.
type journal struct {
	db *bolt.DB

	mu      sync.Mutex
	seq     uint64
	waiting []*journalOp
	busy    bool

	// n counts its commits, for measuring the group commit.
	n journalCounts
}

// journalCounts: transactions written (each is one bbolt commit: its
// pages, an fdatasync, its meta page, another fdatasync), the callers'
// commits they held, the records put and deleted, and the time spent
// writing them.
type journalCounts struct {
	txs, ops, puts, dels atomic.Int64
	ns                   atomic.Int64
}

// journalOp is one caller's writes: records to put and keys to delete.
type journalOp struct {
	puts map[uint64][]byte
	dels []uint64
	err  error
	// done gets false when err is final, true when this caller is to
	// commit for the others waiting.
	done chan bool
}

// openJournal opens (making it if needed) the journal at path and returns
// its records by key, in key order.
func openJournal(path string) (*journal, []uint64, map[uint64][]byte, error) {
	_, statErr := os.Stat(path)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open link journal %s: %w", path, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A new file's name is durable only once its folder is synced:
		// records acknowledged after a power loss soon after must not go
		// with the file.
		if err := syncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, nil, nil, fmt.Errorf("link journal %s: %w", path, err)
		}
	}
	// It holds folder write caps: the node's user alone may read it, even
	// when an older run or a copy left it open to others (bolt's mode
	// applies only to a new file).
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("link journal %s: %w", path, err)
	}
	j := &journal{db: db}
	var keys []uint64
	recs := map[uint64][]byte{}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(journalBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("key of %d bytes, want 8", len(k))
			}
			id := binary.BigEndian.Uint64(k)
			keys = append(keys, id)
			recs[id] = append([]byte(nil), v...)
			j.seq = max(j.seq, id)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("read link journal %s: %w", path, err)
	}
	return j, keys, recs, nil
}

// next reserves a record key; keys grow in the order they are reserved.
func (j *journal) next() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	return j.seq
}

func journalKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// commit writes puts and deletes dels durably (together with other
// callers' commits under way), returning once they are on disk.
func (j *journal) commit(puts map[uint64][]byte, dels []uint64) error {
	op := &journalOp{puts: puts, dels: dels, done: make(chan bool, 1)}
	j.mu.Lock()
	j.waiting = append(j.waiting, op)
	lead := !j.busy
	j.busy = true
	j.mu.Unlock()
	if !lead && !<-op.done {
		return op.err
	}
	// Lead: commit everything waiting (this caller's own op among it),
	// then hand the lead to the first caller that came meanwhile.
	j.mu.Lock()
	batch := j.waiting
	j.waiting = nil
	j.mu.Unlock()
	t0 := time.Now()
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(journalBucket)
		for _, o := range batch {
			for id, v := range o.puts {
				if err := b.Put(journalKey(id), v); err != nil {
					return err
				}
			}
			for _, id := range o.dels {
				if err := b.Delete(journalKey(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	j.n.txs.Add(1)
	j.n.ns.Add(int64(time.Since(t0)))
	j.n.ops.Add(int64(len(batch)))
	for _, o := range batch {
		j.n.puts.Add(int64(len(o.puts)))
		j.n.dels.Add(int64(len(o.dels)))
	}
	if err != nil {
		err = fmt.Errorf("write link journal: %w", err)
	}
	for _, o := range batch {
		o.err = err
		if o != op {
			o.done <- false
		}
	}
	j.mu.Lock()
	if len(j.waiting) == 0 {
		j.busy = false
		j.mu.Unlock()
	} else {
		next := j.waiting[0]
		j.mu.Unlock()
		next.done <- true
	}
	return op.err
}

func (j *journal) close() error { return j.db.Close() }

// encodeRecord is r as the journal stores it.
func encodeRecord(r linkRecord) ([]byte, error) { return json.Marshal(r) }

// decodeRecord reads a journal record.
func decodeRecord(b []byte) (linkRecord, error) {
	var r linkRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return linkRecord{}, fmt.Errorf("link record: %w", err)
	}
	return r, nil
}

// syncDir fsyncs a folder, making the names in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
