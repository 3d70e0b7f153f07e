package storagedisk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Pack records (docs/formats.md, "Packed small shares"): a 40-byte header
// and the share's bytes, appended to a pack file.
//
//	0   4  magic "TPK1"
//	4   1  kind: 1 share, 2 tombstone (the share is deleted)
//	5   3  zero
//	8  16  storage index
//	24  4  share number, big endian
//	28  4  data length, big endian (0 for a tombstone)
//	32  4  CRC-32C of bytes 0..32 (the header so far)
//	36  4  CRC-32C of bytes 0..36 followed by the data
//	40  …  data
//
// The header checksum lets a scanner trust the length (and so find the
// next record) even when the data is damaged; the second checksum covers
// header and data together.
const (
	packMagic     = "TPK1"
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

// record is one parsed pack record; data aliases the parsed buffer.
type record struct {
	kind byte
	ref  storage.Ref
	data []byte
}

// encodeHeader fills hdr (recHeaderLen bytes) for a record of data.
func encodeHeader(hdr []byte, kind byte, ref storage.Ref, data []byte) {
	copy(hdr[0:4], packMagic)
	hdr[4] = kind
	hdr[5], hdr[6], hdr[7] = 0, 0, 0
	copy(hdr[8:24], ref.Index[:])
	binary.BigEndian.PutUint32(hdr[24:28], ref.Num)
	binary.BigEndian.PutUint32(hdr[28:32], uint32(len(data)))
	binary.BigEndian.PutUint32(hdr[32:36], crc32.Checksum(hdr[:32], castagnoli))
	c := crc32.Update(0, castagnoli, hdr[:36])
	binary.BigEndian.PutUint32(hdr[36:40], crc32.Update(c, castagnoli, data))
}

// parseHeader checks the header at the start of b and returns the kind,
// ref and data length it claims.
func parseHeader(b []byte) (kind byte, ref storage.Ref, n int, err error) {
	if len(b) < recHeaderLen {
		return 0, ref, 0, errRecShort
	}
	if string(b[0:4]) != packMagic || b[5]|b[6]|b[7] != 0 ||
		binary.BigEndian.Uint32(b[32:36]) != crc32.Checksum(b[:32], castagnoli) {
		return 0, ref, 0, errRecHeader
	}
	kind = b[4]
	n64 := binary.BigEndian.Uint32(b[28:32])
	if (kind != recKindShare && kind != recKindDelete) || n64 > maxRecordData || (kind == recKindDelete && n64 != 0) {
		return 0, ref, 0, errRecHeader
	}
	copy(ref.Index[:], b[8:24])
	ref.Num = binary.BigEndian.Uint32(b[24:28])
	return kind, ref, int(n64), nil
}

// parseRecord parses the record at the start of b. It returns the record
// and its length in b; with errRecData the length is still right (the
// header is sound), with the other errors it is 0.
func parseRecord(b []byte) (record, int, error) {
	kind, ref, n, err := parseHeader(b)
	if err != nil {
		return record{}, 0, err
	}
	if len(b)-recHeaderLen < n {
		return record{}, 0, errRecShort
	}
	data := b[recHeaderLen : recHeaderLen+n]
	c := crc32.Update(0, castagnoli, b[:36])
	if binary.BigEndian.Uint32(b[36:40]) != crc32.Update(c, castagnoli, data) {
		return record{}, recHeaderLen + n, errRecData
	}
	return record{kind: kind, ref: ref, data: data}, recHeaderLen + n, nil
}

// scanEvent is what scanRecords reports: a whole, sound record at off, or
// a damaged span [off, off+skip) it stepped over.
type scanEvent struct {
	off  int64
	rec  record
	skip int64 // > 0: damaged bytes skipped, rec unset
}

// scanRecords walks a pack's bytes and reports each sound record and each
// damaged span to fn, in file order. It returns the length of the sound
// prefix to keep: after it there is no sound record, only a torn tail (a
// crash mid-append) or damage, which the caller truncates. A record whose
// checksums fail is never reported as a record: it may be a torn append
// that was never acknowledged. After damage the scan looks for the next
// sound record (its magic and both checksums), so that damage in the
// middle of a pack costs only the records it hit; from the end of a
// record whose header is sound (only its data is damaged), else from the
// next byte.
func scanRecords(b []byte, fn func(scanEvent)) int64 {
	off := 0
	for off < len(b) {
		rec, n, err := parseRecord(b[off:])
		if err == nil {
			fn(scanEvent{off: int64(off), rec: rec})
			off += n
			continue
		}
		// A record whose header is sound but whose data is not is stepped
		// over by its length: its data came from a client and may hold
		// a forged record, which must not be taken for one. For the same
		// reason a sound header whose record runs past the end is a torn
		// append: what follows it is its own data, not records.
		from := off + 1
		if errors.Is(err, errRecData) {
			from = off + n
		} else if _, _, _, herr := parseHeader(b[off:]); herr == nil {
			return int64(off) // torn tail: a sound header, cut short
		}
		next := resync(b, from)
		if next < 0 {
			return int64(off) // torn tail: nothing sound follows
		}
		fn(scanEvent{off: int64(off), skip: int64(next - off)})
		off = next
	}
	return int64(off)
}

// resync finds the first offset at or after from where a sound record
// starts, or -1.
func resync(b []byte, from int) int {
	for from < len(b) {
		i := bytes.Index(b[from:], []byte(packMagic))
		if i < 0 {
			return -1
		}
		at := from + i
		if _, _, err := parseRecord(b[at:]); err == nil {
			return at
		}
		from = at + 1
	}
	return -1
}
