package chk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/tagged"
)

// Convergence computes a convergent key while the content streams through
// it (for instance while an uploader spools to a temporary file): the key is
// the tagged hash of the convergence secret, the parameters, the codec name,
// the content and its length. Same content, secret and parameters give the
// same key, hence the same storage index and shares (deduplication); a
// different secret gives unrelated ones, so outsiders cannot confirm a guess
// of the content without the secret.
type Convergence struct {
	h    *tagged.Hasher
	size int64
}

// NewConvergence starts a convergent key.
func NewConvergence(secret []byte, p Params, codecName string) (*Convergence, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkCodecName(codecName); err != nil {
		return nil, fmt.Errorf("convergent key: %w", err)
	}
	h := tagged.New(tagged.ChkConvergentKey)
	h.WriteBytes(secret)
	h.WriteUint64(uint64(p.K))
	h.WriteUint64(uint64(p.N))
	h.WriteUint64(uint64(p.SegmentSize))
	h.WriteBytes([]byte(codecName))
	return &Convergence{h: h}, nil
}

// Write adds content.
func (c *Convergence) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.size += int64(len(p))
	return len(p), nil
}

// Size is how many content bytes were written.
func (c *Convergence) Size() int64 { return c.size }

// Key finishes: the content's length closes the hash input.
func (c *Convergence) Key() cap.Key {
	hc := c.h.Clone() // the length goes into a copy, so Key may be called twice
	hc.WriteUint64(uint64(c.size))
	return cap.Key(hc.Sum())
}

// ConvergentKey reads r to its end (the first of two passes) and returns the
// convergent key and the content's size.
func ConvergentKey(secret []byte, p Params, codecName string, r io.Reader) (cap.Key, int64, error) {
	c, err := NewConvergence(secret, p, codecName)
	if err != nil {
		return cap.Key{}, 0, err
	}
	if _, err := io.Copy(c, r); err != nil {
		return cap.Key{}, 0, fmt.Errorf("convergent key: read content: %w", err)
	}
	return c.Key(), c.size, nil
}

// RandomKey returns a fresh random key: for streams that cannot be read
// twice, at the cost of no deduplication.
func RandomKey() (cap.Key, error) {
	var k cap.Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("random key: %w", err)
	}
	return k, nil
}

// xorKeyStream encrypts (or decrypts) p, which sits at byte offset off of
// the file, with AES-256-CTR. The counter block is the 128-bit big-endian
// index of the 16-byte block of the file, starting at 0: a zero IV. That is
// safe because a key encrypts exactly one plaintext: a random key is used
// once, and a convergent key is a hash of the whole plaintext, so two
// files sharing a key are the same file with the same ciphertext.
func xorKeyStream(b cipher.Block, off int64, dst, src []byte) {
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off/aes.BlockSize))
	s := cipher.NewCTR(b, iv[:])
	if skip := int(off % aes.BlockSize); skip > 0 {
		var junk [aes.BlockSize]byte
		s.XORKeyStream(junk[:skip], junk[:skip])
	}
	s.XORKeyStream(dst, src)
}

func newCipher(k cap.Key) cipher.Block {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // unreachable: the key is always 32 bytes
	}
	return b
}
