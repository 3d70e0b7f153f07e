// Package pluginhost runs a node's plugins: it starts each plugin process
// (a built-in one by re-executing the tarn binary as "tarn plugin serve KIND
// NAME", an external one from its path, checked against its SHA-256 pin),
// configures it, and supervises it. go-plugin never restarts a dead plugin,
// so each plugin has a supervisor here: when the process dies, the call in
// flight fails, and the next call starts a fresh process, with exponential
// back-off between starts that keep failing.
//
// A Host hands out supervised values that implement the kinds' Go
// interfaces (codec.Codec, storage.Backend, transport.Transport) and keep
// working across restarts, so services hold them for the node's lifetime.
package pluginhost

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Sentinel errors callers branch on.
var (
	// ErrClosed is returned by every call after Host.Close.
	ErrClosed = errors.New("plugin host closed")
	// ErrPluginDied wraps the error of a call whose plugin process died
	// under it. The next call restarts the process.
	ErrPluginDied = errors.New("plugin process died")
	// ErrPluginDown is returned while a plugin that failed to start waits
	// for its next start (back-off); it wraps the last start error.
	ErrPluginDown = errors.New("plugin is down")
	// ErrNotConfigured is returned by Host.Codec, Storage or Transport for a
	// kind that has no Spec.
	ErrNotConfigured = errors.New("no plugin configured for this kind")
)

// Spec says which plugin serves a kind and how.
type Spec struct {
	Kind pluginkit.Kind
	// Name is a built-in plugin ("reedsolomon"); Path an external binary.
	// Exactly one is set.
	Name string
	Path string
	// SHA256 pins the binary (32 bytes); nil means not pinned. Only
	// external binaries are pinned: a built-in one is the host itself.
	SHA256 []byte
	// FastPath offers the shared-memory / fd-passing data plane.
	FastPath bool
	// Config is the plugin's own settings, a JSON object handed to it with
	// Configure after every start. Empty or "{}" means none.
	Config json.RawMessage
}

// Label is how logs and errors name the plugin: "codec reedsolomon" or
// "codec /path/to/bin".
func (s Spec) Label() string {
	if s.Path != "" {
		return fmt.Sprintf("%s plugin %s", s.Kind, s.Path)
	}
	return fmt.Sprintf("%s plugin %q", s.Kind, s.Name)
}

// DisplayName is the built-in name, or the base name of an external binary.
func (s Spec) DisplayName() string {
	if s.Path != "" {
		return filepath.Base(s.Path)
	}
	return s.Name
}

func (s Spec) validate() error {
	if _, ok := kinds[s.Kind]; !ok {
		return fmt.Errorf("plugin kind %q: want one of codec, storage, transport", s.Kind)
	}
	switch {
	case s.Name == "" && s.Path == "":
		return fmt.Errorf("%s plugin: set a built-in name or a path", s.Kind)
	case s.Name != "" && s.Path != "":
		return fmt.Errorf("%s plugin: set a built-in name or a path, not both", s.Kind)
	case len(s.SHA256) != 0 && len(s.SHA256) != 32:
		return fmt.Errorf("%s: sha256 pin has %d bytes, want 32", s.Label(), len(s.SHA256))
	case len(s.SHA256) != 0 && s.Path == "":
		return fmt.Errorf("%s: only an external plugin (path) can be pinned", s.Label())
	}
	if hasConfig(s.Config) {
		var m map[string]any
		if err := json.Unmarshal(s.Config, &m); err != nil {
			return fmt.Errorf("%s: config is not a JSON object: %v", s.Label(), err)
		}
	}
	return nil
}

func hasConfig(c json.RawMessage) bool {
	switch strings.TrimSpace(string(c)) {
	case "", "{}", "null":
		return false
	}
	return true
}

// SpecsFromProfile turns a profile's [plugins.*] tables into Specs, one per
// kind. The built-in disk backend without a path keeps its shares in
// STATE_DIR/shares.
func SpecsFromProfile(p *conf.Profile) ([]Spec, error) {
	var specs []Spec
	for _, k := range []struct {
		kind pluginkit.Kind
		pl   conf.Plugin
	}{
		{pluginkit.KindCodec, p.Plugins.Codec},
		{pluginkit.KindStorage, p.Plugins.Storage},
		{pluginkit.KindTransport, p.Plugins.Transport},
	} {
		s := Spec{Kind: k.kind, Name: k.pl.Name, Path: k.pl.Path, FastPath: k.pl.FastPath}
		if k.pl.SHA256 != "" {
			sum, err := hex.DecodeString(k.pl.SHA256)
			if err != nil || len(sum) != 32 {
				return nil, fmt.Errorf("plugins.%s.sha256: %q is not 64 hex digits", k.kind, k.pl.SHA256)
			}
			s.SHA256 = sum
		}
		cfg := k.pl.Config
		if k.kind == pluginkit.KindStorage && s.Name == "disk" {
			// The plugin process does not know the node folder: give it an
			// absolute path, relative ones taken from the state folder.
			cfg = map[string]any{}
			for key, v := range k.pl.Config {
				cfg[key] = v
			}
			switch path, _ := cfg["path"].(string); {
			case cfg["path"] == nil:
				cfg["path"] = filepath.Join(p.Node.StateDir, "shares")
			case path != "" && !filepath.IsAbs(path):
				cfg["path"] = filepath.Join(p.Node.StateDir, path)
			}
		}
		if len(cfg) > 0 {
			b, err := json.Marshal(cfg)
			if err != nil {
				return nil, fmt.Errorf("plugins.%s.config: %w", k.kind, err)
			}
			s.Config = b
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// Options tune a Host. The zero value is good for a node.
type Options struct {
	// Logger receives the host's lines and every plugin's, named
	// "KIND.NAME". Default: a null logger.
	Logger hclog.Logger
	// Executable runs built-in plugins; default os.Executable().
	Executable string
	// BuiltinArgs are the arguments that make Executable serve a built-in
	// plugin; default "plugin serve KIND NAME".
	BuiltinArgs func(kind pluginkit.Kind, name string) []string
	// StartTimeout bounds one start: launch, handshake, Configure.
	// Default 10s.
	StartTimeout time.Duration
	// Back-off between consecutive failed starts: BackoffMin doubling up to
	// BackoffMax (defaults 100ms and 30s). A process that ran HealthyAfter
	// (default 10s) before it died is restarted at once.
	BackoffMin, BackoffMax, HealthyAfter time.Duration
	// MaxCallWait is the longest a call waits for a back-off to end before
	// it fails with ErrPluginDown; default 2s.
	MaxCallWait time.Duration
}

func (o *Options) fill() error {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the tarn binary to run built-in plugins: %w", err)
		}
		o.Executable = exe
	}
	if o.BuiltinArgs == nil {
		o.BuiltinArgs = func(k pluginkit.Kind, name string) []string {
			return []string{"plugin", "serve", string(k), name}
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.StartTimeout, 10*time.Second)
	def(&o.BackoffMin, 100*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.HealthyAfter, 10*time.Second)
	def(&o.MaxCallWait, 2*time.Second)
	return nil
}

// Host runs one supervised plugin per kind.
type Host struct {
	opts Options
	sups map[pluginkit.Kind]*supervisor

	mu     sync.Mutex
	closed bool
}

// New validates the specs (at most one per kind) and starts every plugin,
// so that a profile naming a missing, mis-pinned or broken plugin fails at
// once. On error nothing is left running.
func New(ctx context.Context, opts Options, specs ...Spec) (*Host, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	h := &Host{opts: opts, sups: map[pluginkit.Kind]*supervisor{}}
	seen := map[pluginkit.Kind]bool{}
	for _, s := range specs {
		if err := s.validate(); err != nil {
			return nil, err
		}
		if seen[s.Kind] {
			return nil, fmt.Errorf("two %s plugins given: one per kind", s.Kind)
		}
		seen[s.Kind] = true
	}
	for _, s := range specs {
		h.sups[s.Kind] = newSupervisor(h, s)
	}
	for _, k := range pluginkit.Kinds {
		if s, ok := h.sups[k]; ok {
			p, err := s.get(ctx)
			if err != nil {
				h.Close()
				return nil, err
			}
			s.release(p)
		}
	}
	return h, nil
}

// Status is what the host knows of one plugin.
type Status struct {
	Kind     pluginkit.Kind `json:"kind"`
	Name     string         `json:"name"`
	Path     string         `json:"path,omitempty"`   // external binaries only
	SHA256   string         `json:"sha256,omitempty"` // the binary's hash, external only
	Version  string         `json:"version"`          // the plugin's own, from its Info
	Protocol uint           `json:"protocol"`         // the kind's major protocol version
	Pid      int            `json:"pid"`
	Health   string         `json:"health"` // "ok", "exited", "down", "stopped"
	FastPath bool           `json:"fast_path"`
	Restarts int            `json:"restarts"`
	Started  time.Time      `json:"started"`
	LastErr  string         `json:"last_error,omitempty"`
}

// List reports every plugin, in kind order.
func (h *Host) List() []Status {
	var out []Status
	for _, s := range h.sups {
		out = append(out, s.status())
	}
	order := map[pluginkit.Kind]int{}
	for i, k := range pluginkit.Kinds {
		order[k] = i
	}
	sort.Slice(out, func(i, j int) bool { return order[out[i].Kind] < order[out[j].Kind] })
	return out
}

// Pid is the pid of kind's current process, or 0.
func (h *Host) Pid(kind pluginkit.Kind) int {
	if s, ok := h.sups[kind]; ok {
		return s.status().Pid
	}
	return 0
}

// Close stops every plugin. Calls in flight fail; later calls return
// ErrClosed.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	for _, s := range h.sups {
		s.close()
	}
	return nil
}

func (h *Host) sup(kind pluginkit.Kind) (*supervisor, error) {
	s, ok := h.sups[kind]
	if !ok {
		return nil, fmt.Errorf("%s: %w", kind, ErrNotConfigured)
	}
	return s, nil
}

// Codec returns the supervised codec. It also implements codec.BatchCodec.
func (h *Host) Codec() (*Codec, error) {
	s, err := h.sup(pluginkit.KindCodec)
	if err != nil {
		return nil, err
	}
	return &Codec{s: s}, nil
}

// Storage returns the supervised storage backend. It also implements
// storage.Indexer.
func (h *Host) Storage() (*Storage, error) {
	s, err := h.sup(pluginkit.KindStorage)
	if err != nil {
		return nil, err
	}
	return &Storage{s: s}, nil
}

// Transport returns the supervised transport.
func (h *Host) Transport() (*Transport, error) {
	s, err := h.sup(pluginkit.KindTransport)
	if err != nil {
		return nil, err
	}
	return &Transport{s: s}, nil
}

var (
	_ codec.Codec         = (*Codec)(nil)
	_ storage.Backend     = (*Storage)(nil)
	_ transport.Transport = (*Transport)(nil)
)
