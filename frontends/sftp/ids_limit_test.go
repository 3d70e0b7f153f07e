package sftp

import (
	"encoding/binary"
	"strings"
	"testing"
)

// An ids request within maxExtended whose answer would exceed maxPacket is
// refused (pkg/sftp answers unsupported), never sent over the limit.
func TestIdsReplyNeverOverMaxPacket(t *testing.T) {
	n := &idNames{uid: 1000, gid: 1000, name: strings.Repeat("a", 32)}
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint32(b, uint32(len(idsExt)))
	b = append(b, idsExt...)
	ids := make([]byte, 0, 60<<10)
	for len(ids) < 60<<10 {
		ids = binary.BigEndian.AppendUint32(ids, 1000)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	b = append(b, ids...)
	b = binary.BigEndian.AppendUint32(b, 0)
	// A short request of the same name is still answered.
	small := binary.BigEndian.AppendUint32(nil, 7)
	small = binary.BigEndian.AppendUint32(small, uint32(len(idsExt)))
	small = append(small, idsExt...)
	small = binary.BigEndian.AppendUint32(small, 4)
	small = binary.BigEndian.AppendUint32(small, 1000)
	small = binary.BigEndian.AppendUint32(small, 0)
	if _, ok := n.reply(7, small); !ok {
		t.Fatal("a request for one id was refused")
	}
	out, ok := n.reply(7, b)
	if ok && len(out)-4 > maxPacket {
		t.Fatalf("answer of %d bytes, over the %d-byte packet limit", len(out)-4, maxPacket)
	}
}
