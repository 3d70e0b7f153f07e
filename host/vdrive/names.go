package vdrive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"
	"unicode/utf8"

	"github.com/tarnfs/tarn/host/dirnode"
)

// MaxNewNameLen bounds the name of a new entry in bytes of UTF-8 after NFC:
// 255, NAME_MAX of ext4, XFS, btrfs, APFS and (in UTF-16 units, which a
// name of at most 255 bytes never exceeds) NTFS. A longer name could be
// stored (dirnode.MaxNameLen is 1,024, and entries that long written by
// older versions stay readable, listable, removable and renamable), but no
// common local file system could hold a copy of it: rclone, sftp, davfs
// and Windows would fail to bring it back. So every operation that makes
// a name (Create, Put, Mkdir, Rename's target, Link, LinkMany) refuses a
// longer one, before touching the grid, and every folder change refuses
// to make one (setEntry). A longer name that exists is not new: Create,
// Put and a Rename over it replace its file in place.
//
// The other rules of names (docs/formats.md, "Names") live in
// dirnode.CleanName, which SplitPath applies to every path: Linux's rule
// (anything but "/" and NUL) in valid UTF-8, normalised to NFC.
const MaxNewNameLen = 255

// ErrNameTooLong: a new entry name longer than MaxNewNameLen. The error
// returned also matches ErrBadName (so frontends answer as for any bad
// name: WebDAV 400, SFTP SSH_FX_BAD_MESSAGE as OpenSSH does for
// ENAMETOOLONG), fs.ErrInvalid and syscall.ENAMETOOLONG; errors.As gives a
// *NameTooLongError with the length.
var ErrNameTooLong error = &kindError{"name too long", syscall.ENAMETOOLONG, nil}

// NameTooLongError is the error of a new name over MaxNewNameLen bytes.
type NameTooLongError struct {
	// Len is the name's length in bytes (UTF-8, NFC).
	Len int
}

func (e *NameTooLongError) Error() string {
	return fmt.Sprintf("name too long: %d bytes (UTF-8, NFC), new names are limited to %d", e.Len, MaxNewNameLen)
}

// Is matches ErrNameTooLong and what a bad name matches.
func (e *NameTooLongError) Is(target error) bool {
	switch target {
	case ErrNameTooLong, ErrBadName, fs.ErrInvalid, syscall.EINVAL, syscall.ENAMETOOLONG:
		return true
	}
	return false
}

var _ error = (*NameTooLongError)(nil)

// CheckNewName refuses a name clean (NFC, as SplitPath and
// dirnode.CleanName give it) that is too long for a new entry. It counts
// bytes, not runes: 85 three-byte runes are 255 bytes and pass.
func CheckNewName(clean string) error {
	if len(clean) > MaxNewNameLen {
		return &NameTooLongError{Len: len(clean)}
	}
	return nil
}

// setEntry is how every vdrive change sets an entry (tx.Set): a name
// over MaxNewNameLen is set only over an entry it names already (the
// content of an old over-long file replaced in place, a rename over it),
// never made anew. The one place that rule holds, whatever checks ran
// before: the entry may have gone since they looked.
func setEntry(tx *dirnode.Tx, name, readCap, writeCap string, m Metadata) error {
	if len(name) > MaxNewNameLen {
		if _, ok, err := tx.Get(name); err != nil {
			return err
		} else if !ok {
			return &NameTooLongError{Len: len(name)}
		}
	}
	return tx.Set(name, readCap, writeCap, m)
}

// CheckWritePath is CheckNewPath for writing a file at p (Create, Put, a
// rename's target): a name over MaxNewNameLen passes when an entry has it
// already (a file an older version named so, whose content is replaced in
// place). For a frontend that refuses a request before its body is read;
// the operation checks again. It reads the parent folder only for an
// over-long name.
func (d *Drive) CheckWritePath(ctx context.Context, p string) error {
	err := CheckNewPath(p)
	if !errors.Is(err, ErrNameTooLong) || d.root.w == nil {
		return err
	}
	if _, serr := d.Stat(ctx, p); serr != nil {
		return err
	}
	return nil
}

// writableFile is writable for an operation that writes a file at p
// (Create, Put): a name over MaxNewNameLen is refused unless it names an
// entry already (linked or pending), looked up on the folder's current
// version. A directory there is left to the caller (ErrIsDir).
func (d *Drive) writableFile(ctx context.Context, op, p string) (dirRef, string, error) {
	parent, name, err := d.writable(ctx, op, p)
	if err != nil || len(name) <= MaxNewNameLen {
		return parent, name, err
	}
	if _, ok := d.pendingLink(parent, name); ok {
		return parent, name, nil
	}
	if _, _, ok, err := d.lookup(ctx, parent, name, false); err != nil {
		return dirRef{}, "", pathErr(op, p, err)
	} else if !ok {
		return dirRef{}, "", pathErr(op, p, &NameTooLongError{Len: len(name)})
	}
	return parent, name, nil
}

// CheckNewPath is CheckNewName of the last component of the slash path p
// (SplitPath's errors for a bad path; nil for the root): for a frontend
// that refuses a request before its body is read.
func CheckNewPath(p string) error {
	_, name, ok, err := locate(p)
	if err != nil || !ok {
		return err
	}
	return CheckNewName(name)
}

// writableNew is writable for an operation that makes a new name at p:
// an over-long name is refused before the parent is looked up.
func (d *Drive) writableNew(ctx context.Context, op, p string) (dirRef, string, error) {
	if d.root.w != nil {
		if err := CheckNewPath(p); err != nil {
			return dirRef{}, "", pathErr(op, p, err)
		}
	}
	return d.writable(ctx, op, p)
}

// shown is a path or name as an error message shows it: as it is when it
// is printable UTF-8, else quoted in Go syntax (\n, \x01, \xff), so that
// a message is one line of valid UTF-8 whatever bytes a client sent (an
// SFTP name need not be UTF-8; Linux names may hold newlines).
func shown(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}
