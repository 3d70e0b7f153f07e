package conf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Load reads DIR/tarn.toml (or the file itself when given a file), applies
// the defaults and validates it. A mistaken profile gives an ErrorList
// holding every mistake; a missing one an error wrapping ErrNoProfile.
func Load(path string) (*Profile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load profile %s: %w", path, err)
	}
	file := abs
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		file = filepath.Join(abs, FileName)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load profile %s: %w (run `tarn init --profile ROLE DIR` to write one)", file, ErrNoProfile)
		}
		return nil, fmt.Errorf("load profile: %w", err)
	}
	return Parse(file, data)
}

// Parse decodes and validates profile text as if read from file; the node
// folder is file's folder. It is Load without the file system.
func Parse(file string, data []byte) (*Profile, error) {
	p := defaultProfile()
	p.File = file
	p.Dir = filepath.Dir(file)
	// A byte-order mark, as Windows editors write one, is not TOML: it was
	// refused as "expected '.' or '='" at line 1, column 1.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))

	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, ErrorList{{File: file, Line: pe.Position.Line, Col: column(data, pe.Position), Key: pe.LastKey, Msg: lowerMsg(pe.Message)}}
		}
		return nil, ErrorList{{File: file, Msg: err.Error()}}
	}
	d := &decoder{file: file, lines: keyLines(string(data))}
	d.decodeStruct("", doc, reflectValue(p))
	p.lines = d.lines
	p.derive()
	// A key that did not decode keeps its default: checks that read it
	// would report a value the operator never wrote ("h = 7 is more than
	// n = 5" after h = 3.5), so they are skipped for it.
	failed := map[string]bool{}
	for _, e := range d.errs {
		failed[e.Key] = true
	}
	v := &validator{decoder: d, p: p, failed: failed}
	v.validate()
	if len(d.errs) > 0 {
		d.errs.Sort()
		return nil, d.errs
	}
	return p, nil
}

// New returns the default profile of a node folder, every default applied,
// with no service enabled: a start for code that writes profiles (such as
// `tarn dev`), which sets what it needs, checks it with Validate and writes
// it with Encode.
func New(dir string) (*Profile, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new profile %s: %w", dir, err)
	}
	p := defaultProfile()
	p.Dir, p.File = abs, filepath.Join(abs, FileName)
	p.derive()
	return p, nil
}

// Validate checks a profile built or changed in code, as Load checks a
// file: an ErrorList of every mistake, or nil.
func (p *Profile) Validate() error {
	d := &decoder{file: p.File, lines: p.lines}
	(&validator{decoder: d, p: p}).validate()
	if len(d.errs) > 0 {
		d.errs.Sort()
		return d.errs
	}
	return nil
}

// Encode writes the profile as TOML that Load reads back to the same
// profile (without comments). Paths inside the node folder are written
// relative to it, so the folder can still be moved or restored elsewhere
// after a command rewrote its profile; paths outside it stay absolute.
func (p *Profile) Encode(w io.Writer) error {
	if err := toml.NewEncoder(w).Encode(p.relative()); err != nil {
		return fmt.Errorf("encode profile %s: %w", p.File, err)
	}
	return nil
}

// ConfigJSON is the plugin's config table as the JSON handed to the plugin.
func (pl *Plugin) ConfigJSON() ([]byte, error) {
	if pl.Config == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(pl.Config)
}

// lowerMsg makes the toml package's messages read like ours: lower case
// first word, no trailing period.
func lowerMsg(m string) string {
	m = strings.TrimSuffix(m, ".")
	if len(m) > 1 && m[0] >= 'A' && m[0] <= 'Z' && m[1] >= 'a' && m[1] <= 'z' {
		m = string(m[0]+'a'-'A') + m[1:]
	}
	return m
}

// column is a syntax error's column when it points into its line; the toml
// package places some errors (a duplicate key, an end of file) past the
// end, where a column would only confuse.
func column(data []byte, pos toml.Position) int {
	lines := strings.Split(string(data), "\n")
	if pos.Line < 1 || pos.Line > len(lines) || pos.Col < 1 {
		return 0
	}
	if pos.Col > utf8.RuneCountInString(strings.TrimRight(lines[pos.Line-1], "\r")) {
		return 0
	}
	return pos.Col
}

// relative is a copy of p whose paths inside p.Dir are relative to it
// (derive makes them absolute again on Load).
func (p *Profile) relative() *Profile {
	q := *p
	if q.Dir == "" {
		return &q
	}
	rel := func(s *string) {
		if *s == "" || !filepath.IsAbs(*s) {
			return
		}
		r, err := filepath.Rel(q.Dir, *s)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return
		}
		*s = r
	}
	rel(&q.Node.StateDir)
	rel(&q.Grid.SecretFile)
	rel(&q.Client.ConvergenceSecretFile)
	rel(&q.Client.APITokenFile)
	for _, pl := range []*Plugin{&q.Plugins.Codec, &q.Plugins.Storage, &q.Plugins.Transport} {
		rel(&pl.Path)
	}
	q.WebDAV = slices.Clone(q.WebDAV)
	for i := range q.WebDAV {
		rel(&q.WebDAV[i].TLSCert)
		rel(&q.WebDAV[i].TLSKey)
	}
	q.SFTP = slices.Clone(q.SFTP)
	for i := range q.SFTP {
		q.SFTP[i].HostKeys = slices.Clone(q.SFTP[i].HostKeys)
		for j := range q.SFTP[i].HostKeys {
			rel(&q.SFTP[i].HostKeys[j])
		}
	}
	q.Accounts = slices.Clone(q.Accounts)
	for i := range q.Accounts {
		rel(&q.Accounts[i].RootCapFile)
	}
	return &q
}
