package cap

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/tarnfs/tarn/host/tagged"
)

// Kinds of mutable-file caps (docs/formats.md, "Mutable files").
const (
	KindMutable       = "mut"
	KindMutableRead   = "mut-ro"
	KindMutableVerify = "mut-verify"
)

// Sizes of the secrets in mutable caps.
const (
	WriteSecretSize   = 32
	PublicKeyHashSize = tagged.Size
)

// MutableWrite is the write cap of a mutable file (a slot). Its one field,
// the write secret, derives everything else: the Ed25519 signing key, the
// write key (for secrets only writers may see, such as a directory's child
// write caps), the read key, the public key's hash and the storage index.
type MutableWrite struct {
	Secret [WriteSecretSize]byte
}

// MutableRead is the read cap of a mutable file: the read key decrypts any
// version, the public key hash authenticates it (a version's signature must
// be by the key whose hash this is).
type MutableRead struct {
	ReadKey       Key
	PublicKeyHash [PublicKeyHashSize]byte
}

// MutableVerify is the verify cap of a mutable file: it finds the shares
// (the storage index derives from the hash) and checks every signature,
// proof and block without being able to read.
type MutableVerify struct {
	PublicKeyHash [PublicKeyHashSize]byte
}

var (
	_ Cap = MutableWrite{}
	_ Cap = MutableRead{}
	_ Cap = MutableVerify{}
)

func init() {
	kinds[KindMutable] = parseMutableWrite
	kinds[KindMutableRead] = parseMutableRead
	kinds[KindMutableVerify] = parseMutableVerify
}

// NewMutableWrite makes the write cap of a new slot from fresh randomness.
func NewMutableWrite() (MutableWrite, error) {
	var w MutableWrite
	if _, err := rand.Read(w.Secret[:]); err != nil {
		return w, fmt.Errorf("new mutable write cap: %w", err)
	}
	return w, nil
}

func (MutableWrite) Kind() string  { return KindMutable }
func (MutableRead) Kind() string   { return KindMutableRead }
func (MutableVerify) Kind() string { return KindMutableVerify }

func (c MutableWrite) String() string {
	return Prefix + KindMutable + ":" + enc.EncodeToString(c.Secret[:])
}

func (c MutableRead) String() string {
	return Prefix + KindMutableRead + ":" + enc.EncodeToString(c.ReadKey[:]) + ":" + enc.EncodeToString(c.PublicKeyHash[:])
}

func (c MutableVerify) String() string {
	return Prefix + KindMutableVerify + ":" + enc.EncodeToString(c.PublicKeyHash[:])
}

// SigningKey is the slot's Ed25519 private key.
func (c MutableWrite) SigningKey() ed25519.PrivateKey {
	seed := tagged.Hash(tagged.MutSigningKey, c.Secret[:])
	return ed25519.NewKeyFromSeed(seed[:])
}

// PublicKey is the slot's Ed25519 public key.
func (c MutableWrite) PublicKey() ed25519.PublicKey {
	return c.SigningKey().Public().(ed25519.PublicKey)
}

// WriteKey is a 32-byte secret only write-cap holders can derive: the read
// key is derived from it one way. Directories encrypt child write caps
// under keys derived from it.
func (c MutableWrite) WriteKey() Key { return Key(tagged.Hash(tagged.MutWriteKey, c.Secret[:])) }

// ReadCap diminishes the write cap to its read cap, offline.
func (c MutableWrite) ReadCap() MutableRead {
	wk := c.WriteKey()
	return MutableRead{ReadKey: Key(tagged.Hash(tagged.MutReadKey, wk[:])), PublicKeyHash: PublicKeyHashOf(c.PublicKey())}
}

// VerifyCap diminishes the write cap to its verify cap.
func (c MutableWrite) VerifyCap() Cap { return c.ReadCap().Verify() }

// StorageIndex is where the slot's shares live.
func (c MutableWrite) StorageIndex() StorageIndex { return c.ReadCap().StorageIndex() }

// Verify diminishes the read cap to its verify cap, offline.
func (c MutableRead) Verify() MutableVerify { return MutableVerify{PublicKeyHash: c.PublicKeyHash} }

// VerifyCap is Verify as a Cap (for Diminish).
func (c MutableRead) VerifyCap() Cap { return c.Verify() }

// StorageIndex is where the slot's shares live.
func (c MutableRead) StorageIndex() StorageIndex { return MutableStorageIndexOf(c.PublicKeyHash) }

// VerifyCap is the cap itself.
func (c MutableVerify) VerifyCap() Cap { return c }

// StorageIndex is where the slot's shares live.
func (c MutableVerify) StorageIndex() StorageIndex { return MutableStorageIndexOf(c.PublicKeyHash) }

// PublicKeyHashOf is the tagged hash of an Ed25519 public key, as caps hold it.
func PublicKeyHashOf(pub ed25519.PublicKey) [PublicKeyHashSize]byte {
	return tagged.Hash(tagged.MutPublicKey, pub)
}

// MutableStorageIndexOf derives a slot's storage index from its public key
// hash, so that a storage server holding the public key can check that a
// slot is at the index the key owns.
func MutableStorageIndexOf(pkh [PublicKeyHashSize]byte) StorageIndex {
	s := tagged.Hash(tagged.MutStorageIndex, pkh[:])
	var si StorageIndex
	copy(si[:], s[:])
	return si
}

func parseMutableWrite(f []string) (Cap, error) {
	if err := nfields(KindMutable, f, 1); err != nil {
		return nil, err
	}
	var c MutableWrite
	if err := bin(KindMutable, "write secret", f[0], c.Secret[:]); err != nil {
		return nil, err
	}
	return c, nil
}

func parseMutableRead(f []string) (Cap, error) {
	if err := nfields(KindMutableRead, f, 2); err != nil {
		return nil, err
	}
	var c MutableRead
	if err := bin(KindMutableRead, "read key", f[0], c.ReadKey[:]); err != nil {
		return nil, err
	}
	if err := bin(KindMutableRead, "public key hash", f[1], c.PublicKeyHash[:]); err != nil {
		return nil, err
	}
	return c, nil
}

func parseMutableVerify(f []string) (Cap, error) {
	if err := nfields(KindMutableVerify, f, 1); err != nil {
		return nil, err
	}
	var c MutableVerify
	if err := bin(KindMutableVerify, "public key hash", f[0], c.PublicKeyHash[:]); err != nil {
		return nil, err
	}
	return c, nil
}
