package vdrive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tarnfs/tarn/host/filelock"
)

// The failed links (FailedLinksFile) are what the write-behind could not
// make: one JSON object a line, appended by the node and fsynced. The
// operator re-links them (tarn links relink, docs/operations.md), which
// rewrites the file without the lines it made. Both take an flock on
// FailedLinksLock around their change, so a line the node appends while
// the CLI rewrites is never lost with the old file.

// FailedLinksLock is the lock file beside FailedLinksFile.
const FailedLinksLock = FailedLinksFile + ".lock"

// FailedLink is one line of FailedLinksFile.
type FailedLink struct {
	Time time.Time `json:"time"`
	// Folder is the folder's read cap; Root the read cap of the root of
	// the drive that acknowledged the link, Path the folder's path
	// under it ("/a/b"; none in lines of older versions).
	Folder string `json:"folder,omitempty"`
	Root   string `json:"root,omitempty"`
	Path   string `json:"path,omitempty"`
	Name   string `json:"name,omitempty"`
	Cap    string `json:"cap,omitempty"` // the file's read cap
	Size   int64  `json:"size,omitempty"`
	// Mtime and Extra: the metadata set on the file after its upload
	// (an SFTP SETSTAT, a WebDAV PROPPATCH) and acknowledged; none when
	// it was not set.
	Mtime time.Time         `json:"mtime,omitzero"`
	Extra map[string]string `json:"extra,omitempty"`
	// Acknowledged is when the file was answered as stored.
	Acknowledged time.Time `json:"acknowledged,omitzero"`
	Error        string    `json:"error"`
	Record       string    `json:"record,omitempty"` // a journal record that could not be read
}

// lockFailed takes the failed links' lock in dir until the returned func
// is called.
func lockFailed(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, FailedLinksLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock failed links: %w", err)
	}
	if err := filelock.Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock failed links: %w", err)
	}
	return func() { f.Close() }, nil // closing drops the flock
}

// writeFailed appends f to FailedLinksFile, fsynced. A link it cannot
// keep there (its caller leaves it in the journal) is counted in Stats.
func (b *Behind) writeFailed(f FailedLink) error {
	err := b.appendFailed(f)
	if err != nil {
		b.st.unrecorded.Add(1)
		b.st.unrecordedErr.Store(err.Error())
	}
	return err
}

func (b *Behind) appendFailed(f FailedLink) error {
	line, err := json.Marshal(f)
	if err != nil {
		return err
	}
	b.failMu.Lock()
	defer b.failMu.Unlock()
	unlock, err := lockFailed(b.cfg.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	p := filepath.Join(b.cfg.Dir, FailedLinksFile)
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// Its caps (a bad record's folder write cap too) are the node
	// user's alone, even in a file an older run made open to others.
	if err := fh.Chmod(0o600); err != nil {
		fh.Close()
		return err
	}
	// A last line cut short (a write that hit a full disk, a crash of
	// the machine) must not swallow this one: it starts a line of its
	// own.
	if fi, err := fh.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := fh.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := fh.Write(append(line, '\n')); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// ReadFailedLinks reads the failed links kept in dir (a node's state
// folder), in the order they were kept; none when there is no file. A
// line that is not a FailedLink (cut short) is one with only Record (the
// line) and Error (its number and why).
func ReadFailedLinks(dir string) ([]FailedLink, error) {
	b, err := os.ReadFile(filepath.Join(dir, FailedLinksFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read failed links: %w", err)
	}
	return parseFailedLinks(b)
}

func parseFailedLinks(b []byte) ([]FailedLink, error) {
	var out []FailedLink
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var f FailedLink
		if err := json.Unmarshal(line, &f); err != nil {
			// A line cut short or damaged: shown (and counted) as
			// unreadable, so that every other line is still listed and
			// this one can be dropped, rather than hiding them all.
			f = FailedLink{Record: string(line), Error: fmt.Sprintf("failed links line %d unreadable: %v", n, err)}
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed links: %w", err)
	}
	return out, nil
}

// RemoveFailedLinks rewrites the failed links in dir without the lines
// drop returns true for (given their index in ReadFailedLinks' order), as
// one atomic replace under the lock; a line appended meanwhile is kept.
// It returns how many lines it removed.
func RemoveFailedLinks(dir string, drop func(i int, f FailedLink) bool) (int, error) {
	unlock, err := lockFailed(dir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	p := filepath.Join(dir, FailedLinksFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read failed links: %w", err)
	}
	all, err := parseFailedLinks(b)
	if err != nil {
		return 0, err
	}
	var keep bytes.Buffer
	removed := 0
	for i, f := range all {
		if drop(i, f) {
			removed++
			continue
		}
		line, err := json.Marshal(f)
		if err != nil {
			return 0, err
		}
		keep.Write(append(line, '\n'))
	}
	if removed == 0 {
		return 0, nil
	}
	tmp, err := os.CreateTemp(dir, FailedLinksFile+".*")
	if err != nil {
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(keep.Bytes()); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return 0, fmt.Errorf("rewrite failed links: %w", err)
	}
	return removed, nil
}
