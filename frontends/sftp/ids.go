package sftp

import "encoding/binary"

// users-groups-by-id@openssh.com: SFTP version 3 attributes carry only a
// numeric owner and group, so OpenSSH's sftp (9.1 and later) printed
// `ls -l FILE` as "0 0" while a folder's listing, from the server's long
// names, showed the account's name. With this extension answered, sftp
// asks the names of the ids it shows, and both show the account's name.
// limitsConn advertises it in the version packet and answers it (the
// request server has no hook for it).

const idsExt = "users-groups-by-id@openssh.com"

// idNames names the session's owner and group ids: every file shows uid
// and gid (fsys), both named after the account; other ids have no name
// (the client shows the number).
type idNames struct {
	uid, gid uint32
	name     string
}

// reply answers the extended request body b (after the type byte: id,
// name, then the uids and gids as strings of packed uint32s); false when
// b is malformed or the answer would exceed maxPacket (pkg/sftp then
// answers it: unsupported).
func (n *idNames) reply(id uint32, b []byte) ([]byte, bool) {
	b = b[8+len(idsExt):] // id and name, parsed by parseExtended
	uids, b, ok := sshString(b)
	if !ok {
		return nil, false
	}
	gids, _, ok := sshString(b)
	if !ok || len(uids)%4 != 0 || len(gids)%4 != 0 || len(uids)+len(gids) > maxExtended {
		return nil, false
	}
	names := func(out, ids []byte, mine uint32) []byte {
		var list []byte
		for i := 0; i < len(ids); i += 4 {
			s := ""
			if binary.BigEndian.Uint32(ids[i:]) == mine {
				s = n.name
			}
			list = binary.BigEndian.AppendUint32(list, uint32(len(s)))
			list = append(list, s...)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(list)))
		return append(out, list...)
	}
	out := []byte{0, 0, 0, 0, fxpExtReply}
	out = binary.BigEndian.AppendUint32(out, id)
	out = names(out, uids, n.uid)
	out = names(out, gids, n.gid)
	if len(out)-4 > maxPacket {
		// Many ids of a long name: an answer over the packet limit would
		// make OpenSSH drop the connection; pkg/sftp answers unsupported.
		return nil, false
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, true
}

// sshString splits an SSH string off the front of b.
func sshString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	k := binary.BigEndian.Uint32(b)
	if uint64(k) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+k], b[4+k:], true
}
