package cap

import "errors"

// Kinds of directory caps (docs/formats.md, "Directories"). A directory is
// a mutable slot holding a directory root, so each directory cap wraps the
// slot's cap of the same authority and has the same fields.
const (
	KindDir       = "dir"
	KindDirRead   = "dir-ro"
	KindDirVerify = "dir-verify"
)

// DirWrite is the write cap of a directory: it may change entries and
// open the children's write caps.
type DirWrite struct{ Slot MutableWrite }

// DirRead is the read cap of a directory: it lists entries and gives the
// children's read caps, never their write caps.
type DirRead struct{ Slot MutableRead }

// DirVerify is the verify cap of a directory: it checks the directory's
// slot without reading it.
type DirVerify struct{ Slot MutableVerify }

var (
	_ Cap = DirWrite{}
	_ Cap = DirRead{}
	_ Cap = DirVerify{}
)

func init() {
	kinds[KindDir] = func(f []string) (Cap, error) {
		c, err := parseMutableWrite(f)
		if err != nil {
			return nil, err
		}
		return DirWrite{Slot: c.(MutableWrite)}, nil
	}
	kinds[KindDirRead] = func(f []string) (Cap, error) {
		c, err := parseMutableRead(f)
		if err != nil {
			return nil, err
		}
		return DirRead{Slot: c.(MutableRead)}, nil
	}
	kinds[KindDirVerify] = func(f []string) (Cap, error) {
		c, err := parseMutableVerify(f)
		if err != nil {
			return nil, err
		}
		return DirVerify{Slot: c.(MutableVerify)}, nil
	}
}

// NewDirWrite makes the write cap of a new directory from fresh randomness.
func NewDirWrite() (DirWrite, error) {
	w, err := NewMutableWrite()
	return DirWrite{Slot: w}, err
}

func (DirWrite) Kind() string  { return KindDir }
func (DirRead) Kind() string   { return KindDirRead }
func (DirVerify) Kind() string { return KindDirVerify }

// The strings are the slot caps' with the kind renamed: the fields are
// the slot's (a write secret; a read key and public key hash; a public key
// hash).
func (c DirWrite) String() string {
	return Prefix + KindDir + c.Slot.String()[len(Prefix+KindMutable):]
}
func (c DirRead) String() string {
	return Prefix + KindDirRead + c.Slot.String()[len(Prefix+KindMutableRead):]
}
func (c DirVerify) String() string {
	return Prefix + KindDirVerify + c.Slot.String()[len(Prefix+KindMutableVerify):]
}

// ReadCap diminishes the write cap to the directory's read cap, offline.
func (c DirWrite) ReadCap() DirRead { return DirRead{Slot: c.Slot.ReadCap()} }

// Verify diminishes the read cap to the directory's verify cap, offline.
func (c DirRead) Verify() DirVerify { return DirVerify{Slot: c.Slot.Verify()} }

// VerifyCap diminishes to the verify cap (for Diminish).
func (c DirWrite) VerifyCap() Cap { return c.ReadCap().Verify() }

// VerifyCap diminishes to the verify cap (for Diminish).
func (c DirRead) VerifyCap() Cap { return c.Verify() }

// VerifyCap is the cap itself.
func (c DirVerify) VerifyCap() Cap { return c }

// ReadOnly diminishes any readable cap to its read cap, offline: a
// directory or mutable write cap to its read cap; read caps (chk, lit,
// dir-ro, mut-ro) are returned as they are. Verify caps have no read cap
// (ErrNoRead).
func ReadOnly(c Cap) (Cap, error) {
	switch v := c.(type) {
	case DirWrite:
		return v.ReadCap(), nil
	case MutableWrite:
		return v.ReadCap(), nil
	case DirRead, MutableRead, CHK, Literal:
		return c, nil
	default:
		return nil, ErrNoRead
	}
}

// ErrNoRead: a cap that cannot be diminished to a read cap (a verify cap).
var ErrNoRead = errors.New("cap: has no read cap")

// StorageIndex is the storage index of the directory's slot.
func (c DirWrite) StorageIndex() StorageIndex { return c.Slot.StorageIndex() }

// StorageIndex is the storage index of the directory's slot.
func (c DirRead) StorageIndex() StorageIndex { return c.Slot.StorageIndex() }

// StorageIndex is the storage index of the directory's slot.
func (c DirVerify) StorageIndex() StorageIndex { return c.Slot.StorageIndex() }
