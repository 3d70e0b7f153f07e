package sftp

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/host/vdrive"
)

// referenceServer is OpenSSH's sftp-server (Debian: openssh-sftp-server).
const referenceServer = "/usr/lib/openssh/sftp-server"

// The tree every comparison case starts from (directories end in "/").
var compareTree = []string{
	"file", "dir/", "dir/inner", "empty/", "r1", "r2", "pr1", "pr2",
	"prd/", "prd/x", "pre/", "pre2/", "rm1", "rmd/", "ren/", "tr", "ch",
}

// compareCase is one request (or a short sequence) and its outcome: the
// status code OpenSSH's sftp-server answers (0: success), and, where tarn
// answers otherwise on purpose, tarn's code with the reason (documented in
// docs/sftp.md).
type compareCase struct {
	name    string
	run     func(c *rawClient) (reply, error)
	openssh uint32
	tarn    *uint32
	why     string
}

func code(c uint32) *uint32 { return &c }

func openRead(p string) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) {
		r, err := c.open(p, fRead, nil)
		if err != nil || r.typ != pHandle {
			return r, err
		}
		h := r.handle()
		defer c.closeHandle(h)
		return c.call(pRead, pkt{}.str(h).u64(0).u32(100))
	}
}

func openWrite(p string, flags uint32) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) {
		r, err := c.open(p, flags, nil)
		if err != nil || r.typ != pHandle {
			return r, err
		}
		return c.closeHandle(r.handle())
	}
}

func p1(typ byte, p string) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) { return c.path1(typ, p) }
}

func p2(typ byte, a, b string) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) { return c.path2(typ, a, b) }
}

func ext2(name, a, b string) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) { return c.ext(name, pkt{}.str(a).str(b)) }
}

func mkdir(p string) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) { return c.call(pMkdir, pkt{}.str(p).u32(0)) }
}

func setstat(p string, attrs pkt) func(c *rawClient) (reply, error) {
	return func(c *rawClient) (reply, error) { return c.call(pSetstat, pkt{}.str(p).append(attrs)) }
}

var writableCases = []compareCase{
	{name: "stat missing", run: p1(pStat, "missing"), openssh: fxNoSuchFile},
	{name: "stat under a file", run: p1(pStat, "file/x"), openssh: fxNoSuchFile},
	{name: "stat under missing", run: p1(pStat, "missing/x"), openssh: fxNoSuchFile},
	{name: "lstat missing", run: p1(pLstat, "missing"), openssh: fxNoSuchFile},
	{name: "stat file", run: p1(pStat, "file")},
	{name: "stat root", run: p1(pStat, "/")},
	{name: "stat dot-dot above root", run: p1(pStat, "../../..")},
	{name: "open missing for read", run: openRead("missing"), openssh: fxNoSuchFile},
	{name: "read a directory", run: openRead("dir"), openssh: fxFailure},
	{name: "read past the end", run: func(c *rawClient) (reply, error) {
		r, err := c.open("file", fRead, nil)
		if err != nil || r.typ != pHandle {
			return r, err
		}
		defer c.closeHandle(r.handle())
		return c.call(pRead, pkt{}.str(r.handle()).u64(1000).u32(100))
	}, openssh: fxEOF},
	{name: "fstat", run: func(c *rawClient) (reply, error) {
		r, err := c.open("file", fRead, nil)
		if err != nil || r.typ != pHandle {
			return r, err
		}
		defer c.closeHandle(r.handle())
		return c.call(pFstat, pkt{}.str(r.handle()))
	}},
	{name: "close a bad handle", run: func(c *rawClient) (reply, error) { return c.closeHandle("nope") }, openssh: fxNoSuchFile,
		tarn: code(fxFailure), why: "pkg/sftp answers an unknown handle (EBADF) with failure"},
	{name: "open a directory for write", run: openWrite("dir", fWrite|fCreat|fTrunc), openssh: fxFailure},
	{name: "create in missing folder", run: openWrite("missing/new", fWrite|fCreat|fTrunc), openssh: fxNoSuchFile},
	{name: "create under a file", run: openWrite("file/new", fWrite|fCreat|fTrunc), openssh: fxNoSuchFile},
	{name: "create exclusive over a file", run: openWrite("file", fWrite|fCreat|fExcl), openssh: fxFailure},
	{name: "open missing for write without creat", run: openWrite("nofile", fWrite), openssh: fxNoSuchFile},
	{name: "create a new file", run: openWrite("newfile", fWrite|fCreat|fTrunc)},
	{name: "mkdir existing", run: mkdir("dir"), openssh: fxFailure},
	{name: "mkdir existing file", run: mkdir("file"), openssh: fxFailure},
	{name: "mkdir in missing folder", run: mkdir("missing/x"), openssh: fxNoSuchFile},
	{name: "mkdir under a file", run: mkdir("file/x"), openssh: fxNoSuchFile},
	{name: "mkdir new", run: func(c *rawClient) (reply, error) { return c.call(pMkdir, pkt{}.str("newdir").u32(0)) }},
	{name: "rmdir not empty", run: p1(pRmdir, "dir"), openssh: fxFailure},
	{name: "rmdir a file", run: p1(pRmdir, "file"), openssh: fxNoSuchFile},
	{name: "rmdir missing", run: p1(pRmdir, "missing"), openssh: fxNoSuchFile},
	{name: "rmdir empty", run: p1(pRmdir, "rmd")},
	{name: "remove a directory", run: p1(pRemove, "empty"), openssh: fxFailure},
	{name: "remove missing", run: p1(pRemove, "missing"), openssh: fxNoSuchFile},
	{name: "remove a file", run: p1(pRemove, "rm1")},
	{name: "rename missing", run: p2(pRename, "missing", "x"), openssh: fxNoSuchFile},
	{name: "rename onto a file", run: p2(pRename, "r1", "r2"), openssh: fxFailure},
	{name: "rename onto itself", run: p2(pRename, "file", "file"), openssh: fxFailure},
	{name: "rename a folder into itself", run: p2(pRename, "ren", "ren/sub"), openssh: fxBadMessage},
	{name: "rename into missing folder", run: p2(pRename, "r1", "missing/x"), openssh: fxNoSuchFile},
	{name: "rename a file", run: p2(pRename, "r1", "r1-moved")},
	{name: "posix-rename onto a file", run: ext2("posix-rename@openssh.com", "pr1", "pr2")},
	{name: "posix-rename a file onto a folder", run: ext2("posix-rename@openssh.com", "file", "empty"), openssh: fxFailure},
	{name: "posix-rename onto a non-empty folder", run: ext2("posix-rename@openssh.com", "pre", "prd"), openssh: fxFailure},
	{name: "posix-rename a folder onto a file", run: ext2("posix-rename@openssh.com", "pre", "file"), openssh: fxNoSuchFile},
	{name: "posix-rename a folder onto an empty folder", run: ext2("posix-rename@openssh.com", "pre2", "empty")},
	{name: "symlink", run: p2(pSymlink, "file", "link"), tarn: code(fxOpUnsupported),
		why: "the drive has no symbolic links"},
	{name: "hardlink", run: ext2("hardlink@openssh.com", "file", "hard"), tarn: code(fxOpUnsupported),
		why: "the drive has no hard links"},
	{name: "readlink a file", run: p1(pReadlink, "file"), openssh: fxBadMessage},
	{name: "readlink missing", run: p1(pReadlink, "missing"), openssh: fxNoSuchFile},
	{name: "realpath of dot", run: p1(pRealpath, ".")},
	{name: "realpath with dot-dot", run: p1(pRealpath, "dir/../file")},
	{name: "realpath missing", run: p1(pRealpath, "missing")},
	{name: "chmod missing", run: setstat("missing", pkt{}.u32(aPerm).u32(0o600)), openssh: fxNoSuchFile},
	{name: "chmod a file", run: setstat("ch", pkt{}.u32(aPerm).u32(0o600))},
	{name: "set times", run: setstat("ch", pkt{}.u32(aTimes).u32(1_600_000_000).u32(1_600_000_000))},
	{name: "chown (ignored)", run: setstat("ch", pkt{}.u32(aUIDGID).u32(uint32(os.Getuid())).u32(uint32(os.Getgid())))},
	{name: "truncate", run: setstat("tr", pkt{}.u32(aSize).u64(2))},
	{name: "truncate a folder", run: setstat("empty", pkt{}.u32(aSize).u64(0)), openssh: fxFailure},
	{name: "rename a folder onto a folder", run: p2(pRename, "ren", "empty"), openssh: fxFailure},
	{name: "open read-write", run: openWrite("file", fRead|fWrite)},
	{name: "append to a missing file without creat", run: openWrite("missing", fWrite|fAppend), openssh: fxNoSuchFile},
	{name: "set times of the root", run: setstat(".", pkt{}.u32(aTimes).u32(1_600_000_000).u32(1_600_000_000))},
	{name: "statvfs", run: func(c *rawClient) (reply, error) { return c.ext("statvfs@openssh.com", pkt{}.str(".")) }},
	{name: "statvfs missing", run: func(c *rawClient) (reply, error) { return c.ext("statvfs@openssh.com", pkt{}.str("missing")) },
		openssh: fxNoSuchFile},
	{name: "opendir a file", run: p1(pOpendir, "file"), openssh: fxNoSuchFile},
	{name: "opendir missing", run: p1(pOpendir, "missing"), openssh: fxNoSuchFile},
	{name: "unknown extension", run: func(c *rawClient) (reply, error) { return c.ext("nope@example.com", pkt{}) },
		openssh: fxOpUnsupported},
}

var readOnlyCases = []compareCase{
	{name: "read", run: openRead("file")},
	{name: "open for write", run: openWrite("file", fWrite), openssh: fxPermissionDenied},
	{name: "create", run: openWrite("new", fWrite|fCreat|fTrunc), openssh: fxPermissionDenied},
	{name: "mkdir", run: mkdir("x"), openssh: fxPermissionDenied},
	{name: "rmdir", run: p1(pRmdir, "empty"), openssh: fxPermissionDenied},
	{name: "remove", run: p1(pRemove, "file"), openssh: fxPermissionDenied},
	{name: "rename", run: p2(pRename, "file", "y"), openssh: fxPermissionDenied},
	{name: "posix-rename", run: ext2("posix-rename@openssh.com", "file", "y"), openssh: fxPermissionDenied},
	{name: "chmod", run: setstat("file", pkt{}.u32(aPerm).u32(0o600)), openssh: fxPermissionDenied},
	{name: "symlink", run: p2(pSymlink, "file", "link"), openssh: fxPermissionDenied},
	{name: "statvfs", run: func(c *rawClient) (reply, error) { return c.ext("statvfs@openssh.com", pkt{}.str(".")) }},
}

// buildRef makes the comparison tree in a local folder.
func buildRef(t *testing.T, dir string) {
	for _, p := range compareTree {
		full := path.Join(dir, p)
		if p[len(p)-1] == '/' {
			if err := os.Mkdir(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildDrive makes the comparison tree on a drive.
func buildDrive(t *testing.T, e *env, d *vdrive.Drive) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, p := range compareTree {
		if p[len(p)-1] == '/' {
			if err := d.Mkdir(ctx, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		e.put(d, p, []byte("hello"))
	}
}

// refClient runs sftp-server in dir.
func refClient(t *testing.T, dir string, readOnly bool) *rawClient {
	args := []string{"-d", dir, "-e", "-l", "QUIET"}
	if readOnly {
		args = append(args, "-R")
	}
	cmd := exec.Command(referenceServer, args...)
	cmd.Dir = dir
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	c, err := newRawClient(out, in)
	if err != nil {
		t.Fatalf("sftp-server: %v", err)
	}
	return c
}

// tarnClient opens an sftp subsystem as user over SSH.
func tarnClient(t *testing.T, e *env, user, pw string) *rawClient {
	_, c := dialRaw(t, e, user, pw)
	return c
}

// dialRaw opens an sftp subsystem as user over SSH: the connection
// (closed at the test's end) and a raw client on it.
func dialRaw(t *testing.T, e *env, user, pw string) (*ssh.Client, *rawClient) {
	conn, err := e.dial(user, pw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, _ := sftpSubsystem(t, conn)
	return conn, c
}

// sftpSubsystem opens an sftp subsystem on conn: a raw client on it and
// the session's input (closing it ends the session's input).
func sftpSubsystem(t *testing.T, conn *ssh.Client) (*rawClient, io.WriteCloser) {
	t.Helper()
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	c, err := newRawClient(out, in)
	if err != nil {
		t.Fatal(err)
	}
	return c, in
}

// TestCompareWithOpenSSH runs every case against tarn and, when it is
// installed, OpenSSH's sftp-server on a local folder with the same tree:
// both must answer the code in the table (tarn its documented own where
// the table gives one).
func TestCompareWithOpenSSH(t *testing.T) {
	haveRef := true
	if _, err := os.Stat(referenceServer); err != nil {
		haveRef = false
		t.Logf("%s not installed (apt-get install openssh-sftp-server): checking tarn against the table only", referenceServer)
	}
	e := newEnv(t, envOptions{})
	for _, suite := range []struct {
		name     string
		cases    []compareCase
		user, pw string
		readOnly bool
	}{
		{"writable", writableCases, "alice", alicePW, false},
		{"read-only", readOnlyCases, "bob", bobPW, true},
	} {
		t.Run(suite.name, func(t *testing.T) {
			var ref *rawClient
			if haveRef {
				dir := t.TempDir()
				buildRef(t, dir)
				ref = refClient(t, dir, suite.readOnly)
			}
			buildDrive(t, e, e.drive(suite.user))
			tc := tarnClient(t, e, suite.user, suite.pw)
			for _, c := range suite.cases {
				t.Run(c.name, func(t *testing.T) {
					if ref != nil {
						r, err := c.run(ref)
						if err != nil {
							t.Fatalf("sftp-server: %v", err)
						}
						if r.result() != c.openssh {
							t.Errorf("sftp-server answers %d (%q), the table says %d", r.result(), r.msg, c.openssh)
						}
					}
					want := c.openssh
					if c.tarn != nil {
						want = *c.tarn
					}
					r, err := c.run(tc)
					if err != nil {
						t.Fatalf("tarn: %v", err)
					}
					if r.result() != want {
						t.Errorf("tarn answers %d (%q), want %d", r.result(), r.msg, want)
					}
				})
			}
		})
	}
}
