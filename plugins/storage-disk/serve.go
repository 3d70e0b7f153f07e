//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Settings are the plugin's settings, given by the host through Configure
// as a JSON object: {"path": "/var/lib/tarn/storage", "pack": true}.
type Settings struct {
	// Path is the backend folder; created if missing.
	Path string `json:"path"`
	// Pack (default true) packs small shares given to Put into shared,
	// group-committed pack files; false gives every new share a file of
	// its own (packed shares already there stay readable).
	Pack *bool `json:"pack,omitempty"`
}

// Options are the Disk options the settings ask for.
func (s Settings) Options() Options { return Options{NoPack: s.Pack != nil && !*s.Pack} }

// ErrNotConfigured is returned by every call of a served disk backend that
// has not yet been given its folder.
var ErrNotConfigured = errors.New(`storage disk: not configured: the host must call Configure with {"path": "FOLDER"} first`)

// ParseSettings decodes and checks settings JSON; unknown keys are refused.
func ParseSettings(settingsJSON []byte) (Settings, error) {
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(settingsJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("storage disk settings: %w", err)
	}
	if dec.More() {
		return Settings{}, errors.New("storage disk settings: trailing data after the JSON object")
	}
	if s.Path == "" {
		return Settings{}, errors.New(`storage disk settings: "path" is required`)
	}
	return s, nil
}

// Served is the disk backend as a plugin process runs it: it opens its
// folder when the host configures it, and refuses calls before.
type Served struct {
	mu   sync.Mutex
	disk *Disk
}

var (
	_ storage.Backend      = (*Served)(nil)
	_ storage.Indexer      = (*Served)(nil)
	_ storage.Putter       = (*Served)(nil)
	_ storage.Opener       = (*Served)(nil)
	_ pluginkit.Configurer = (*Served)(nil)
)

// Serve runs the disk backend as a plugin process (tarn plugin serve
// storage disk); the host gives the folder with Configure.
func Serve() {
	limitProcs()
	packLogf = warnLogf(os.Stderr)
	storage.Serve(&Served{})
}

// warnLogf logs to w as hclog JSON lines at warn level. A plugin's stderr
// lines are re-logged by its host at their own level when they are hclog
// JSON, and only at debug level (hidden by default) when they are not: the
// damage a pack scan finds at open must reach the node's log.
func warnLogf(w io.Writer) func(format string, args ...any) {
	l := hclog.New(&hclog.LoggerOptions{Name: "disk", Level: hclog.Trace, Output: w, JSONFormat: true})
	return func(format string, args ...any) { l.Warn(fmt.Sprintf(format, args...)) }
}

// Configure opens the folder named by settings. Configuring again with the
// same folder (as a host does after every restart) is a no-op; another
// folder is refused.
func (s *Served) Configure(_ context.Context, settingsJSON []byte) error {
	set, err := ParseSettings(settingsJSON)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disk != nil {
		if abs, err := filepath.Abs(set.Path); err == nil && abs == s.disk.Dir() {
			return nil
		}
		return fmt.Errorf("storage disk: already configured with %s", s.disk.Dir())
	}
	d, err := NewOptions(set.Path, set.Options())
	if err != nil {
		return err
	}
	s.disk = d
	return nil
}

func (s *Served) get() (*Disk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disk == nil {
		return nil, ErrNotConfigured
	}
	return s.disk, nil
}

func (s *Served) Info(ctx context.Context) (storage.Info, error) {
	return storage.Info{Name: "disk", Version: "1.0.0"}, nil
}

func (s *Served) Space(ctx context.Context) (storage.Space, error) {
	d, err := s.get()
	if err != nil {
		return storage.Space{}, err
	}
	return d.Space(ctx)
}

func (s *Served) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	d, err := s.get()
	if err != nil {
		return nil, err
	}
	return d.Create(ctx, ref, size)
}

// Put stores a whole share in one call (storage.Putter).
func (s *Served) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	d, err := s.get()
	if err != nil {
		return err
	}
	return d.Put(ctx, ref, data)
}

func (s *Served) Stat(ctx context.Context, ref storage.Ref) (int64, error) {
	d, err := s.get()
	if err != nil {
		return 0, err
	}
	return d.Stat(ctx, ref)
}

// Open hands a sealed share's file to a host that reads it itself.
func (s *Served) Open(ctx context.Context, ref storage.Ref) (*os.File, int64, error) {
	d, err := s.get()
	if err != nil {
		return nil, 0, err
	}
	return d.Open(ctx, ref)
}

func (s *Served) ReadAt(ctx context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	d, err := s.get()
	if err != nil {
		return 0, err
	}
	return d.ReadAt(ctx, ref, p, off)
}

func (s *Served) List(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	d, err := s.get()
	if err != nil {
		return nil, err
	}
	return d.List(ctx, index)
}

func (s *Served) Delete(ctx context.Context, ref storage.Ref) error {
	d, err := s.get()
	if err != nil {
		return err
	}
	return d.Delete(ctx, ref)
}

func (s *Served) ReadSlot(ctx context.Context, ref storage.Ref) ([]byte, string, error) {
	d, err := s.get()
	if err != nil {
		return nil, "", err
	}
	return d.ReadSlot(ctx, ref)
}

func (s *Served) WriteSlot(ctx context.Context, ref storage.Ref, expect string, value []byte) (string, error) {
	d, err := s.get()
	if err != nil {
		return "", err
	}
	return d.WriteSlot(ctx, ref, expect, value)
}

func (s *Served) ListSlots(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	d, err := s.get()
	if err != nil {
		return nil, err
	}
	return d.ListSlots(ctx, index)
}

func (s *Served) Indexes(ctx context.Context, fn func(index [storage.StorageIndexSize]byte) error) error {
	d, err := s.get()
	if err != nil {
		return err
	}
	return d.Indexes(ctx, fn)
}

// PutBatch stores several whole shares in one call (storage.BatchPutter).
func (s *Served) PutBatch(ctx context.Context, puts []storage.PutItem) ([]error, error) {
	d, err := s.get()
	if err != nil {
		return nil, err
	}
	return d.PutBatch(ctx, puts)
}
