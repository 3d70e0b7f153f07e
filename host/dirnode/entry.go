package dirnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/tarnfs/tarn/host/tagged"
)

// Hash tags of the directory format (BLAKE3 derive-key contexts, like
// host/tagged's).
const (
	TagNameSalt   = "tarn 2026 dir name hash salt v1"
	TagNameHash   = "tarn 2026 dir name hash v1"
	TagWriteKey   = "tarn 2026 dir child write cap key v1"
	TagWriteNonce = "tarn 2026 dir child write cap nonce v1"
)

// Limits a decoder enforces; an encoder refuses to exceed them.
const (
	MaxCapLen     = 4096
	MaxExtraKeys  = 256
	MaxExtraKey   = 256
	MaxExtraValue = 64 << 10
	maxMeta       = 1 << 20
)

// Errors callers branch on.
var (
	// ErrFormat: bytes that are not a well-formed root or bucket.
	ErrFormat = errors.New("malformed directory")
	// ErrNoWriteKey: the write cap of a child was asked of a read-only
	// directory, or the entry has none (an immutable child).
	ErrNoWriteKey = errors.New("no child write cap")
	// ErrMetadata: metadata that cannot be stored (limits, bad key).
	ErrMetadata = errors.New("bad metadata")
)

// Type is what an entry's child is.
type Type uint8

const (
	TypeUnknown Type = 0
	TypeFile    Type = 1
	TypeDir     Type = 2
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	}
	return "unknown"
}

// Metadata describes a child. Zero times are "not set".
type Metadata struct {
	Type  Type
	Size  int64
	Ctime time.Time
	Mtime time.Time
	// Extra holds free-form keys (e.g. "unix:mode" = "0644", later WebDAV
	// dead properties). Keys are non-empty UTF-8.
	Extra map[string]string
}

// Check reports metadata that could not be encoded.
func (m Metadata) Check() error {
	if m.Size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrMetadata, m.Size)
	}
	if len(m.Extra) > MaxExtraKeys {
		return fmt.Errorf("%w: %d extra keys, more than %d", ErrMetadata, len(m.Extra), MaxExtraKeys)
	}
	for k, v := range m.Extra {
		if k == "" || len(k) > MaxExtraKey || !utf8.ValidString(k) {
			return fmt.Errorf("%w: extra key %q must be 1..%d bytes of UTF-8", ErrMetadata, short(k), MaxExtraKey)
		}
		if len(v) > MaxExtraValue {
			return fmt.Errorf("%w: extra value of %q is %d bytes, more than %d", ErrMetadata, short(k), len(v), MaxExtraValue)
		}
	}
	return nil
}

// clone is a deep copy (Extra is a map).
func (m Metadata) clone() Metadata {
	if m.Extra != nil {
		x := make(map[string]string, len(m.Extra))
		for k, v := range m.Extra {
			x[k] = v
		}
		m.Extra = x
	}
	return m
}

// Entry is one name of a directory.
type Entry struct {
	Name string
	// ReadCap is the child's read cap (for an immutable file its only cap).
	ReadCap string
	Meta    Metadata
	// box is the child's write cap sealed under the directory's write key
	// (nonce || ciphertext || tag), or nil when the child has none.
	box []byte
}

// HasWriteCap reports whether the entry carries a (sealed) child write cap.
func (e Entry) HasWriteCap() bool { return len(e.box) > 0 }

// SealedWriteCap is the sealed child write cap as stored (for tests and
// tools that show what a read-cap holder sees).
func (e Entry) SealedWriteCap() []byte { return append([]byte(nil), e.box...) }

// Keys are a directory's secrets: the name-hash salt (any holder of the
// read cap) and the write key that seals child write caps (write-cap
// holders only; nil in a read-only view).
type Keys struct {
	salt  tagged.Sum
	write *tagged.Sum
}

// NewKeys derives the keys from the directory slot's read key and write
// key (cap.MutableRead.ReadKey, cap.MutableWrite.WriteKey; writeKey nil
// for a read-only view). Both are one-way hashes, so neither reveals its
// source, and the read key cannot give the write key.
func NewKeys(readKey, writeKey []byte) Keys {
	k := Keys{salt: tagged.Hash(TagNameSalt, readKey)}
	if writeKey != nil {
		w := tagged.Hash(TagWriteKey, writeKey)
		k.write = &w
	}
	return k
}

// CanWrite reports whether k holds the write key.
func (k Keys) CanWrite() bool { return k.write != nil }

// nameHash places a name in the hash space of buckets.
func (k Keys) nameHash(name string) uint64 {
	s := tagged.Hash(TagNameHash, k.salt[:], []byte(name))
	return binary.BigEndian.Uint64(s[:8])
}

// seal encrypts a child write cap bound to the entry name (additional
// data), with a nonce derived from key, name and cap: the same entry seals
// to the same bytes, so unchanged buckets encode identically.
func (k Keys) seal(name, writeCap string) ([]byte, error) {
	if writeCap == "" {
		return nil, nil
	}
	if k.write == nil {
		return nil, fmt.Errorf("seal write cap of %q: %w", short(name), ErrNoWriteKey)
	}
	if len(writeCap) > MaxCapLen {
		return nil, fmt.Errorf("seal write cap of %q: cap is %d bytes, more than %d", short(name), len(writeCap), MaxCapLen)
	}
	aead, err := chacha20poly1305.NewX(k.write[:])
	if err != nil {
		return nil, err
	}
	h := tagged.New(TagWriteNonce)
	h.Write(k.write[:])
	h.WriteBytes([]byte(name))
	h.WriteBytes([]byte(writeCap))
	n := h.Sum()
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(writeCap)+aead.Overhead())
	copy(out, n[:chacha20poly1305.NonceSizeX])
	return aead.Seal(out, out, []byte(writeCap), []byte(name)), nil
}

// WriteCap opens the entry's sealed child write cap. It fails with
// ErrNoWriteKey when k is read-only or the entry has no write cap, and with
// ErrFormat when the box does not open (tampered, or sealed for another
// name or directory).
func (k Keys) WriteCap(e Entry) (string, error) {
	if len(e.box) == 0 || k.write == nil {
		return "", fmt.Errorf("write cap of %q: %w", short(e.Name), ErrNoWriteKey)
	}
	aead, err := chacha20poly1305.NewX(k.write[:])
	if err != nil {
		return "", err
	}
	if len(e.box) < chacha20poly1305.NonceSizeX+aead.Overhead() {
		return "", fmt.Errorf("write cap of %q: %w: sealed cap too short", short(e.Name), ErrFormat)
	}
	pt, err := aead.Open(nil, e.box[:chacha20poly1305.NonceSizeX], e.box[chacha20poly1305.NonceSizeX:], []byte(e.Name))
	if err != nil {
		return "", fmt.Errorf("write cap of %q: %w: sealed cap does not open", short(e.Name), ErrFormat)
	}
	return string(pt), nil
}

// bucketVersion starts every encoded bucket.
const bucketVersion = 1

// minEntry is the fewest bytes an encoded entry takes; it bounds the count
// a decoder believes before allocating.
const minEntry = 1 + 1 + 1 + 1 + 6

// encodeBucket encodes entries sorted by name.
func encodeBucket(es []Entry) []byte {
	n := 16
	for i := range es {
		n += len(es[i].Name) + len(es[i].ReadCap) + len(es[i].box) + 48
	}
	b := make([]byte, 0, n)
	b = append(b, bucketVersion)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for i := range es {
		b = appendEntry(b, &es[i])
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0, 0)
	}
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendEntry(b []byte, e *Entry) []byte {
	b = appendStr(b, e.Name)
	b = appendStr(b, e.ReadCap)
	b = binary.AppendUvarint(b, uint64(len(e.box)))
	b = append(b, e.box...)
	var m []byte
	m = append(m, byte(e.Meta.Type))
	m = binary.AppendVarint(m, e.Meta.Size)
	m = appendTime(m, e.Meta.Ctime)
	m = appendTime(m, e.Meta.Mtime)
	keys := make([]string, 0, len(e.Meta.Extra))
	for k := range e.Meta.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m = binary.AppendUvarint(m, uint64(len(keys)))
	for _, k := range keys {
		m = appendStr(m, k)
		m = appendStr(m, e.Meta.Extra[k])
	}
	b = binary.AppendUvarint(b, uint64(len(m)))
	return append(b, m...)
}

// reader decodes with bounds checks; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrFormat, what)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what + ": truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.fail(what + ": bad or non-minimal number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.fail(what + ": bad or non-minimal number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, max int) []byte {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail(fmt.Sprintf("%s: length %d beyond %d or past the end", what, n, max))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) time(what string) time.Time {
	s := r.varint(what)
	ns := r.uvarint(what + " nanoseconds")
	if r.err != nil {
		return time.Time{}
	}
	if ns >= 1e9 {
		r.fail(what + ": nanoseconds out of range")
		return time.Time{}
	}
	if s == 0 && ns == 0 {
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}

// DecodeBucket decodes an encoded bucket. It refuses anything an encoder
// would not have written: unsorted or duplicate names, names not in NFC,
// oversized fields, trailing bytes.
func DecodeBucket(b []byte) ([]Entry, error) {
	r := &reader{b: b}
	if v := r.byte("bucket version"); r.err == nil && v != bucketVersion {
		return nil, fmt.Errorf("%w: bucket version %d, want %d", ErrFormat, v, bucketVersion)
	}
	n := r.uvarint("entry count")
	if r.err != nil {
		return nil, r.err
	}
	if n > uint64(len(r.b)/minEntry) {
		return nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrFormat, n, len(r.b))
	}
	es := make([]Entry, 0, n)
	for i := uint64(0); i < n; i++ {
		e, err := r.entry()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && es[i-1].Name >= e.Name {
			return nil, fmt.Errorf("%w: entry %d %q out of order or duplicate", ErrFormat, i, short(e.Name))
		}
		es = append(es, e)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", ErrFormat, len(r.b))
	}
	return es, nil
}

func (r *reader) entry() (Entry, error) {
	var e Entry
	e.Name = string(r.bytes("name", MaxNameLen))
	if r.err == nil && !validStored(e.Name) {
		r.fail(fmt.Sprintf("name %q is not a clean NFC name", short(e.Name)))
	}
	e.ReadCap = string(r.bytes("read cap", MaxCapLen))
	if r.err == nil && !strings.HasPrefix(e.ReadCap, "tarn:") {
		r.fail("read cap does not start with \"tarn:\"")
	}
	if box := r.bytes("sealed write cap", MaxCapLen+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead); len(box) > 0 {
		if len(box) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead+1 {
			r.fail("sealed write cap too short")
		}
		e.box = append([]byte(nil), box...)
	}
	m := &reader{b: r.bytes("metadata", maxMeta)}
	if r.err != nil {
		return e, r.err
	}
	e.Meta.Type = Type(m.byte("type"))
	if m.err == nil && e.Meta.Type > TypeDir {
		m.fail(fmt.Sprintf("unknown type %d", e.Meta.Type))
	}
	e.Meta.Size = m.varint("size")
	if m.err == nil && e.Meta.Size < 0 {
		m.fail("negative size")
	}
	e.Meta.Ctime = m.time("ctime")
	e.Meta.Mtime = m.time("mtime")
	nx := m.uvarint("extra count")
	if m.err == nil && nx > MaxExtraKeys {
		m.fail(fmt.Sprintf("%d extra keys, more than %d", nx, MaxExtraKeys))
	}
	prev := ""
	for i := uint64(0); i < nx && m.err == nil; i++ {
		k := string(m.bytes("extra key", MaxExtraKey))
		v := string(m.bytes("extra value", MaxExtraValue))
		if m.err != nil {
			break
		}
		if k == "" || !utf8.ValidString(k) || (i > 0 && k <= prev) {
			m.fail(fmt.Sprintf("extra key %q empty, not UTF-8, out of order or duplicate", short(k)))
			break
		}
		if e.Meta.Extra == nil {
			e.Meta.Extra = make(map[string]string, nx)
		}
		e.Meta.Extra[k] = v
		prev = k
	}
	if m.err == nil && len(m.b) != 0 {
		m.fail("bytes after the metadata")
	}
	if m.err != nil {
		return e, fmt.Errorf("%q: %w", short(e.Name), m.err)
	}
	return e, nil
}
