package vdrive

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"
)

// The journal of links not yet made (write-behind, behind.go) is an
// append-only file in the node's state folder (JournalFile): one record
// per link, keyed by a sequence number, so replay applies them in the
// order they were acknowledged. Every commit is written and fdatasynced
// before its callers return; concurrent commits are grouped: callers
// that arrive while one is under way are written together by the next
// one, in one write and one fdatasync for all (journal_log.go). A
// journal of older versions (a bbolt file, oldJournalFile) is taken over
// at the first open (journal_bolt.go).

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
	// for none), or that of this node's latest link of it made since,
	// and Also the caps of this node's earlier links of the name that
	// may be there when the record is replayed (taken into a folder
	// change not known to have failed, or pending: behind_own.go): a
	// replayed link is made only over one of them (behind_replay.go).
	// Prev is nil in records of older versions: replayed as before,
	// unchecked.
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

// syncDir fsyncs a folder, making the names in it durable. A variable so
// that tests can make it fail.
var syncDir = syncDirReal

func syncDirReal(dir string) error {
	if runtime.GOOS == "windows" {
		// Go's Sync of a directory is FlushFileBuffers on a read-only
		// handle there, which fails (golang/go#75541); NTFS journals
		// names itself.
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
