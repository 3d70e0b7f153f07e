// Package vdrive is the tree of directories and files under a root
// directory cap, addressed by slash paths: the one API the CLI, WebDAV and
// SFTP frontends use. It resolves paths through directories (host/dirnode)
// stored in mutable slots, reads and writes files as immutable grid files,
// and changes directories only through the slots' test-and-set Modify, so
// concurrent clients never lose each other's entries. Errors are
// *fs.PathError values around the sentinels below, which also match the
// io/fs and syscall errors a frontend maps to its protocol. Concurrent
// Writer closes, Puts, Links and SetMetadatas on one directory in one
// process are coalesced into one directory change, each caller keeping
// its own result (batch.go); reads of one directory's current version
// asked for while one is under way share the next read (reads.go). A
// node's drives may share a write-behind (OpenBehind, behind.go): drives
// opened WithWriteBehind answer a new file once its link is journaled on
// disk and link a folder's new files together shortly after; every drive
// over it sees the pending files at once.
//
// Use:
//
//	st := vdrive.GridStore(gridClient)          // or any Store
//	root, err := vdrive.NewRoot(ctx, st)        // a new empty directory
//	d, err := vdrive.New(st, root.String())     // tarn:dir: (or tarn:dir-ro: read-only)
//	err = d.MkdirAll(ctx, "/docs/2026")
//	err = d.Put(ctx, "/docs/2026/report.pdf", r, size, nil)
//	l, err := d.PutLinked(ctx, "/a.txt", bytes.NewReader(b), int64(len(b)), nil) // l.Info, l.Replaced
//	w, err := d.Create(ctx, "/docs/notes.txt")  // stream; w.Close links, w.Abort does not
//	infos, err := d.ReadDir(ctx, "/docs")       // []*Info (fs.FileInfo + caps, metadata)
//	f, err := d.Open(ctx, "/docs/notes.txt")    // ReadAt + Size
//	f, err = d.OpenInfo(ctx, info)              // the same from an Info, no look-up
//	info, err := d.StatCached(ctx, "/a.txt")    // a cached miss is final (WithDirCache)
//	err = d.Rename(ctx, "/docs/notes.txt", "/notes.txt")
//
//	b, err := vdrive.OpenBehind(st, vdrive.BehindConfig{Dir: stateDir, Delay: 100 * time.Millisecond})
//	d, err = vdrive.New(b, rootCap, vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind())
//	defer b.Close()                             // makes what is pending; the rest is replayed next open
//
// docs/formats.md ("Directories") has the format and the exact semantics.
package vdrive
