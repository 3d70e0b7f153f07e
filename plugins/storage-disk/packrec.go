//go:build unix

package storagedisk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Pack files (docs/formats.md, "Packed small shares"). A version 3 pack
// (every pack made now) holds two copies of its pack header, A at 0 and B
// at 4096 (in different 4 KiB blocks: one lost sector takes at most one),
// zeros between, and its records from 8192 (no append writes into either
// copy's block). A version 2 pack (made on 2026-11-27 before the copies
// moved apart; read, never appended to) holds them at 0 and 32 and its
// records from 64. A copy:
//
//	0   4  magic "TPKH"
//	4   4  version, big endian: 3 (or 2)
//	8  16  key: random, drawn when the pack is made
//	24  4  zero
//	28  4  CRC-32C of bytes 0..28
//
// The records, each a 40-byte header and the share's bytes:
//
//	0   4  magic "TPK2"
//	4   1  kind: 1 share, 2 tombstone (the share is deleted)
//	5   3  data length, big endian (0 for a tombstone)
//	8  16  storage index
//	24  4  share number, big endian
//	28  4  CRC-32C of the data
//	32  8  tag: SipHash-2-4 of bytes 0..32 under the pack's key, big endian
//	40  …  data
//
// The tag makes a record's identity unforgeable by content: a share's
// bytes come from a client, who never learns the key, so no record it
// writes inside them passes as one, whatever the scan does after damage.
// A header whose tag holds is trusted for its length (and so to find the
// next record) even when its data is damaged, and costs a 32-byte hash
// to check, so that a scan over hostile bytes does bounded work.
//
// A version 1 pack (written before: no pack header, starts with "TPK1")
// is a sequence of records of the old layout, read by the old rules and
// never appended to again:
//
//	0   4  magic "TPK1"
//	4   1  kind
//	5   3  zero
//	8  16  storage index
//	24  4  share number, big endian
//	28  4  data length, big endian
//	32  4  CRC-32C of bytes 0..32
//	36  4  CRC-32C of bytes 0..36 followed by the data
//	40  …  data
const (
	packMagicV1  = "TPK1"
	packMagicV2  = "TPK2"
	packHdrMagic = "TPKH"
	packHdrCopy  = 32              // one copy of the pack header
	packHdrLen   = 2 * packHdrCopy // version 2: both copies, then records
	packVersion2 = 2
	packVersion  = 3 // every pack made now
	// A version 3 pack holds copy A at 0 and copy B at packV3CopyB, in
	// another 4 KiB block, so that one lost sector (or block) cannot take
	// both; its first record starts at packV3Start, so that no append
	// ever writes into the block of either copy.
	packV3CopyB   = 4096
	packV3Start   = 8192
	recHeaderLen  = 40
	recKindShare  = 1
	recKindDelete = 2
	// maxRecordData bounds the length a header may claim: the pack takes
	// shares of at most maxPackShare bytes, so anything larger is damage.
	maxRecordData = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of parseRecord: a record that does not fit in what is left of
// the file, one whose header is not a record header, and one whose header
// is good but whose data does not match its checksum.
var (
	errRecShort  = errors.New("pack record: cut short")
	errRecHeader = errors.New("pack record: bad header")
	errRecData   = errors.New("pack record: data does not match its checksum")
)

// Errors of parsePackHeader: a pack too short to hold its header (made by
// a roll cut short by a crash: no record was ever appended to it), one
// whose header copies are both damaged, and one of a later version.
var (
	errPackTorn    = errors.New("pack header: cut short")
	errPackHeader  = errors.New("pack header: both copies damaged")
	errPackVersion = errors.New("pack header: unknown version")
)

// recCodec reads and writes the records of one pack: version 1, or
// version 2 with the pack's key.
type recCodec struct {
	v2     bool // records tagged under the key (pack versions 2 and 3)
	start  int  // offset of the first record
	k0, k1 uint64
}

// codecV1 reads version 1 packs.
var codecV1 = &recCodec{}

// newPackHeader draws a key and returns a new pack's header and codec.
func newPackHeader() ([]byte, *recCodec, error) {
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, nil, fmt.Errorf("pack key: %w", err)
	}
	return encodePackHeaderV3(key[:]), keyCodec(key[:], packV3Start), nil
}

// encodeHeaderCopy returns one 32-byte copy of a pack header.
func encodeHeaderCopy(version uint32, key []byte) []byte {
	h := make([]byte, packHdrCopy)
	copy(h[0:4], packHdrMagic)
	binary.BigEndian.PutUint32(h[4:8], version)
	copy(h[8:24], key)
	binary.BigEndian.PutUint32(h[28:32], crc32.Checksum(h[:28], castagnoli))
	return h
}

// encodePackHeaderV3 returns the first packV3Start bytes of a version 3
// pack with key: copy A at 0, copy B at packV3CopyB, zeros between.
func encodePackHeaderV3(key []byte) []byte {
	h := make([]byte, packV3Start)
	c := encodeHeaderCopy(packVersion, key)
	copy(h, c)
	copy(h[packV3CopyB:], c)
	return h
}

// encodePackHeader returns the header of a version 2 pack with key (as
// the build of 2026-11-27 morning wrote it; kept for tests).
func encodePackHeader(key []byte) []byte {
	c := encodeHeaderCopy(packVersion2, key)
	return append(c, c...)
}

func keyCodec(key []byte, start int) *recCodec {
	return &recCodec{v2: true, start: start, k0: binary.LittleEndian.Uint64(key[0:8]), k1: binary.LittleEndian.Uint64(key[8:16])}
}

// parsePackHeader returns the codec of the pack whose bytes are b, and
// the offset of its first record. A pack that starts with a version 1
// record is version 1; one shorter than a pack header is a roll cut short
// (errPackTorn: it holds no record), as is a version 3 one shorter than
// packV3Start; one with the header magic in a copy's place and no copy
// sound is errPackHeader, as is one with no magic that holds version 2
// records (holdsV2Records); anything else is a version 1 pack damaged at
// its start, which the version 1 scan deals with.
//
// newer says the pack was made after every pack that may be version 1 or
// 2 (the folder's FORMAT says which: packNewer). Only then is copy B of
// a version 3 header looked for: in an older pack the bytes at
// packV3CopyB may be a client's share bytes, and a header forged there
// (with a key its writer knows) would make forged records sound.
func parsePackHeader(b []byte, newer bool) (*recCodec, int, error) {
	if len(b) >= 4 && string(b[:4]) == packMagicV1 {
		return codecV1, 0, nil
	}
	if len(b) < packHdrLen {
		return nil, 0, errPackTorn
	}
	offs := []int{0, packHdrCopy}
	if newer {
		offs = append(offs, packV3CopyB)
	}
	magic := false
	for _, off := range offs {
		if off+packHdrCopy > len(b) {
			continue
		}
		h := b[off : off+packHdrCopy]
		if string(h[0:4]) != packHdrMagic {
			continue
		}
		magic = true
		if binary.BigEndian.Uint32(h[28:32]) != crc32.Checksum(h[:28], castagnoli) || binary.BigEndian.Uint32(h[24:28]) != 0 {
			continue
		}
		v := binary.BigEndian.Uint32(h[4:8])
		var start, other int
		switch {
		case v == packVersion2 && off != packV3CopyB:
			start, other = packHdrLen, packHdrCopy
		case v == packVersion && off != packHdrCopy:
			start, other = packV3Start, packV3CopyB
			if len(b) < packV3Start {
				return nil, 0, errPackTorn // made by a roll a crash cut: no record
			}
		default:
			return nil, 0, fmt.Errorf("%w %d", errPackVersion, v)
		}
		k := keyCodec(h[8:24], start)
		// A sound first copy whose key differs from a sound second
		// one (damage its CRC missed): the key is the one the first
		// record's tag holds under, else a wrong key would make the
		// whole pack a torn tail, cut at open.
		if o := b[other : other+packHdrCopy]; off == 0 && !k.tagsFirst(b) && soundHeaderCopy(o, v) {
			if k1 := keyCodec(o[8:24], start); k1.tagsFirst(b) {
				return k1, start, nil
			}
		}
		return k, start, nil
	}
	// Both copies lie in one sector: a sector lost (zeroed) takes both
	// magics. A version 1 scan of such a pack would find none of its
	// records, cut it all as a torn tail, and take version 1 records
	// forged in its share bytes; so a file holding version 2 records is
	// a version 2 pack whose header is damaged.
	if magic || holdsV2Records(b) {
		return nil, 0, errPackHeader
	}
	return codecV1, 0, nil
}

// holdsV2Records reports whether b holds version 2 records: a "TPK2"
// whose length field ends its record at the end of b or at another
// "TPK2". (The tags cannot be checked without the key; a version 1
// pack's share bytes hold such a pair by chance about once in 2^32
// occurrences of the magic, themselves rare.)
func holdsV2Records(b []byte) bool {
	magic := []byte(packMagicV2)
	for from := 0; from < len(b); {
		i := bytes.Index(b[from:], magic)
		if i < 0 {
			return false
		}
		at := from + i
		if at+recHeaderLen <= len(b) {
			end := at + recHeaderLen + (int(b[at+5])<<16 | int(b[at+6])<<8 | int(b[at+7]))
			if end == len(b) || end+len(magic) <= len(b) && bytes.Equal(b[end:end+len(magic)], magic) {
				return true
			}
		}
		from = at + 1
	}
	return false
}

// soundHeaderCopy reports whether h is a sound copy of a pack header of
// version v.
func soundHeaderCopy(h []byte, v uint32) bool {
	return string(h[0:4]) == packHdrMagic && binary.BigEndian.Uint32(h[28:32]) == crc32.Checksum(h[:28], castagnoli) &&
		binary.BigEndian.Uint32(h[24:28]) == 0 && binary.BigEndian.Uint32(h[4:8]) == v
}

// tagsFirst reports whether the first record of the keyed pack b has a
// sound header under c's key.
func (c *recCodec) tagsFirst(b []byte) bool {
	_, _, _, err := c.parseHeader(b[c.start:])
	return err == nil
}

// record is one parsed pack record; data aliases the parsed buffer.
type record struct {
	kind byte
	ref  storage.Ref
	data []byte
}

func (c *recCodec) magic() string {
	if c.v2 {
		return packMagicV2
	}
	return packMagicV1
}

// encodeHeader fills hdr (recHeaderLen bytes) for a record of data.
func (c *recCodec) encodeHeader(hdr []byte, kind byte, ref storage.Ref, data []byte) {
	hdr = hdr[:recHeaderLen]
	copy(hdr[8:24], ref.Index[:])
	binary.BigEndian.PutUint32(hdr[24:28], ref.Num)
	if c.v2 {
		n := len(data)
		copy(hdr[0:4], packMagicV2)
		hdr[4], hdr[5], hdr[6], hdr[7] = kind, byte(n>>16), byte(n>>8), byte(n)
		binary.BigEndian.PutUint32(hdr[28:32], crc32.Checksum(data, castagnoli))
		binary.BigEndian.PutUint64(hdr[32:40], sipHash24(c.k0, c.k1, hdr[:32]))
		return
	}
	copy(hdr[0:4], packMagicV1)
	hdr[4] = kind
	hdr[5], hdr[6], hdr[7] = 0, 0, 0
	binary.BigEndian.PutUint32(hdr[28:32], uint32(len(data)))
	binary.BigEndian.PutUint32(hdr[32:36], crc32.Checksum(hdr[:32], castagnoli))
	s := crc32.Update(0, castagnoli, hdr[:36])
	binary.BigEndian.PutUint32(hdr[36:40], crc32.Update(s, castagnoli, data))
}

// parseHeader checks the header at the start of b and returns the kind,
// ref and data length it claims. The cheap checks come first; the one
// that costs (the tag, or the version 1 header CRC) covers 32 bytes.
func (c *recCodec) parseHeader(b []byte) (kind byte, ref storage.Ref, n int, err error) {
	if len(b) < recHeaderLen {
		return 0, ref, 0, errRecShort
	}
	kind = b[4]
	var n32 uint32
	if c.v2 {
		n32 = uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
	} else {
		n32 = binary.BigEndian.Uint32(b[28:32])
	}
	if string(b[0:4]) != c.magic() || (kind != recKindShare && kind != recKindDelete) ||
		n32 > maxRecordData || (kind == recKindDelete && n32 != 0) {
		return 0, ref, 0, errRecHeader
	}
	if c.v2 {
		if binary.BigEndian.Uint64(b[32:40]) != sipHash24(c.k0, c.k1, b[:32]) {
			return 0, ref, 0, errRecHeader
		}
	} else if b[5]|b[6]|b[7] != 0 || binary.BigEndian.Uint32(b[32:36]) != crc32.Checksum(b[:32], castagnoli) {
		return 0, ref, 0, errRecHeader
	}
	copy(ref.Index[:], b[8:24])
	ref.Num = binary.BigEndian.Uint32(b[24:28])
	return kind, ref, int(n32), nil
}

// parseRecord parses the record at the start of b. It returns the record
// and its length in b; with errRecData the length is still right (the
// header is sound), with the other errors it is 0.
func (c *recCodec) parseRecord(b []byte) (record, int, error) {
	kind, ref, n, err := c.parseHeader(b)
	if err != nil {
		return record{}, 0, err
	}
	if len(b)-recHeaderLen < n {
		return record{}, 0, errRecShort
	}
	data := b[recHeaderLen : recHeaderLen+n]
	var ok bool
	if c.v2 {
		ok = binary.BigEndian.Uint32(b[28:32]) == crc32.Checksum(data, castagnoli)
	} else {
		s := crc32.Update(0, castagnoli, b[:36])
		ok = binary.BigEndian.Uint32(b[36:40]) == crc32.Update(s, castagnoli, data)
	}
	if !ok {
		return record{}, recHeaderLen + n, errRecData
	}
	return record{kind: kind, ref: ref, data: data}, recHeaderLen + n, nil
}

// scanEvent is what scanRecords reports: a whole, sound record at off, or
// a damaged span [off, off+skip) it stepped over (gaveUp: the rest of the
// pack, not searched further: see resync).
type scanEvent struct {
	off    int64
	rec    record
	skip   int64 // > 0: damaged bytes skipped, rec unset
	gaveUp bool
}

// scanRecords walks a pack's bytes b from its first record at from and
// reports each sound record and each damaged span to fn, in file order.
// It returns the length of the sound prefix to keep: after it there is no
// sound record, only a torn tail (a crash mid-append) or damage, which the
// caller truncates. A record whose checksums fail is never reported as a
// record: it may be a torn append that was never acknowledged. After
// damage the scan looks for the next sound record, so that damage in the
// middle of a pack costs only the records it hit; from the end of a record
// whose header is sound (only its data is damaged), else from the next
// byte.
func (c *recCodec) scanRecords(b []byte, from int, fn func(scanEvent)) int64 {
	off := from
	budget := resyncBudget(len(b))
	for off < len(b) {
		rec, n, err := c.parseRecord(b[off:])
		if err == nil {
			fn(scanEvent{off: int64(off), rec: rec})
			off += n
			continue
		}
		// A record whose header is sound but whose data is not is stepped
		// over by its length: its data came from a client. For the same
		// reason a sound header whose record runs past the end is a torn
		// append: what follows it is its own data, not records.
		next := off + 1
		if errors.Is(err, errRecData) {
			next = off + n
		} else if _, _, _, herr := c.parseHeader(b[off:]); herr == nil {
			return int64(off) // torn tail: a sound header, cut short
		}
		at := c.resync(b, next, &budget)
		if at == resyncGaveUp {
			fn(scanEvent{off: int64(off), skip: int64(len(b) - off), gaveUp: true})
			return int64(len(b))
		}
		if at < 0 {
			return int64(off) // torn tail: nothing sound follows
		}
		fn(scanEvent{off: int64(off), skip: int64(at - off)})
		off = at
	}
	return int64(off)
}

// resync results besides an offset: no record follows; the work budget
// ran out.
const (
	resyncNone   = -1
	resyncGaveUp = -2
)

// resyncBudget is the data a version 1 resync may checksum in a pack of
// size bytes: a client may have written sound version 1 headers into its
// share bytes, each claiming up to 1 MiB of data to check.
func resyncBudget(size int) int { return 4*size + 4*maxRecordData }

// resync finds the first offset at or after from where a record starts.
// In a version 2 pack that is a header whose tag holds (only the pack's
// own appends make one, so its data, sound or not, is a record's), found
// by a 32-byte hash per occurrence of the magic. In a version 1 pack a
// client can forge a sound header, so the record must be sound as a
// whole; the data checksummed for candidates is charged to budget, and
// when it runs out the scan gives up (resyncGaveUp) rather than take time
// without bound.
func (c *recCodec) resync(b []byte, from int, budget *int) int {
	magic := []byte(c.magic())
	for from < len(b) {
		i := bytes.Index(b[from:], magic)
		if i < 0 {
			return resyncNone
		}
		at := from + i
		if _, _, n, err := c.parseHeader(b[at:]); err == nil {
			if c.v2 {
				return at
			}
			if n <= len(b)-at-recHeaderLen {
				if *budget < n {
					return resyncGaveUp
				}
				*budget -= n
				if _, _, err := c.parseRecord(b[at:]); err == nil {
					return at
				}
			}
		}
		from = at + 1
	}
	return resyncNone
}
