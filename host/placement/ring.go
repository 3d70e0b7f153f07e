// Package placement decides which storage servers hold the shares of a file:
// the permuted ring that orders servers per storage index, the
// servers-of-happiness measure of how well shares are spread, and the
// planner that turns a server list and the shares already found into the
// writes an upload must make.
//
// It is pure logic: no network, no clock. The uploader asks servers, feeds
// the answers in, and follows the plan.
package placement

import (
	"bytes"
	"encoding/binary"
	"sort"

	"github.com/tarnfs/tarn/host/tagged"
)

// RingTag is the tagged-hash purpose of a ring position.
const RingTag = "tarn 2026 placement permute v1"

// RingKey returns the position of server id on the ring of storage index
// si: the tagged hash of the length-prefixed storage index and node id.
// Every client computes the same order, so a downloader asks first the
// servers an uploader wrote to first.
func RingKey(si []byte, id string) tagged.Sum {
	// The bytes tagged.Hasher.WriteBytes would write, hashed with a pooled
	// hasher (tagged.Hash): a new hasher costs ~10 KiB of garbage and an
	// upload computes a key per server.
	var buf [128]byte
	b := buf[:0]
	if n := 16 + len(si) + len(id); n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(si)))
	b = append(b, si...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(id)))
	b = append(b, id...)
	return tagged.Hash(RingTag, b)
}

// Permute returns ids ordered by their position on the ring of si (a new
// slice; ids is not changed). Equal ids keep one position each.
func Permute(si []byte, ids []string) []string {
	type pos struct {
		key tagged.Sum
		id  string
	}
	ps := make([]pos, len(ids))
	for i, id := range ids {
		ps[i] = pos{RingKey(si, id), id}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if c := bytes.Compare(ps[i].key[:], ps[j].key[:]); c != 0 {
			return c < 0
		}
		return ps[i].id < ps[j].id
	})
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.id
	}
	return out
}

// PermuteServers orders servers by ring position for si, as Permute does
// for ids.
func PermuteServers(si []byte, servers []Server) []Server {
	idx := make(map[string][]Server, len(servers))
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = s.ID
		idx[s.ID] = append(idx[s.ID], s)
	}
	out := make([]Server, 0, len(servers))
	for _, id := range Permute(si, ids) {
		out = append(out, idx[id][0])
		idx[id] = idx[id][1:]
	}
	return out
}
