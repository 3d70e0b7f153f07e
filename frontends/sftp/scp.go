package sftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// The legacy scp protocol (what `scp -O` and old clients run as the exec
// request "scp -t PATH" to upload and "scp -f PATH..." to download), over
// the vdrive. Control lines:
//
//	C<mode> <size> <name>\n   a file; <size> bytes and a \0 follow
//	D<mode> 0 <name>\n        enter a directory
//	E\n                       leave it
//	T<mtime> 0 <atime> 0\n    times of the next C or D (-p)
//
// each answered by \0 (ok), \1<msg>\n (warning) or \2<msg>\n (fatal).

// scpCmd is a parsed scp exec request.
type scpCmd struct {
	sink, source bool // -t, -f
	recursive    bool // -r
	preserve     bool // -p
	dirTarget    bool // -d: the target must be a directory
	paths        []string
}

// maxCmdLen bounds an exec command.
const maxCmdLen = 64 << 10

// errNotSCP: the exec request is not an scp command.
var errNotSCP = errors.New("not an scp command")

// parseSCPCommand parses "scp [-v] [-r] [-p] [-d] -t|-f [--] path...",
// with the quoting a POSIX shell would undo (single and double quotes,
// backslashes). Globs are not expanded.
func parseSCPCommand(cmd string) (*scpCmd, error) {
	if len(cmd) > maxCmdLen {
		return nil, fmt.Errorf("command of %d bytes, more than %d", len(cmd), maxCmdLen)
	}
	words, err := shellWords(cmd)
	if err != nil {
		// Only an scp command gets a complaint about its syntax: any
		// other (rclone's shell detection "echo ${ShellId}%ComSpec%")
		// is refused as every other command is.
		if f := strings.Fields(cmd); len(f) == 0 || path.Base(f[0]) != "scp" {
			return nil, errNotSCP
		}
		return nil, err
	}
	if len(words) == 0 || path.Base(words[0]) != "scp" {
		return nil, errNotSCP
	}
	c := &scpCmd{}
	i := 1
	for ; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			i++
			break
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			break
		}
		for _, f := range w[1:] {
			switch f {
			case 't':
				c.sink = true
			case 'f':
				c.source = true
			case 'r':
				c.recursive = true
			case 'p':
				c.preserve = true
			case 'd':
				c.dirTarget = true
			case 'v', 'q', 'E':
			default:
				return nil, fmt.Errorf("scp: unknown option -%c", f)
			}
		}
	}
	c.paths = words[i:]
	switch {
	case c.sink == c.source:
		return nil, errors.New("scp: give exactly one of -t and -f")
	case len(c.paths) == 0:
		return nil, errors.New("scp: no path")
	case c.sink && len(c.paths) != 1:
		return nil, errors.New("scp: -t takes one target")
	}
	return c, nil
}

// shellWords splits s into words as sh would, without expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case ch == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		case strings.IndexByte(";&|<>`$(){}", ch) >= 0:
			return nil, fmt.Errorf("shell syntax %q is not supported", ch)
		default:
			inWord = true
			cur.WriteByte(ch)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// scpLine is one parsed control line.
type scpLine struct {
	kind         byte // 'C', 'D', 'E', 'T'
	mode         fs.FileMode
	size         int64
	name         string
	mtime, atime int64
}

// maxLineLen bounds a control line.
const maxLineLen = 8192

// parseSCPLine parses a control line without its newline.
func parseSCPLine(l string) (scpLine, error) {
	if l == "" {
		return scpLine{}, errors.New("empty control line")
	}
	switch l[0] {
	case 'E':
		if l != "E" {
			return scpLine{}, fmt.Errorf("bad E line %q", clip(l))
		}
		return scpLine{kind: 'E'}, nil
	case 'T':
		f := strings.Fields(l[1:])
		if len(f) != 4 {
			return scpLine{}, fmt.Errorf("bad T line %q", clip(l))
		}
		var v [4]int64
		for i, s := range f {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return scpLine{}, fmt.Errorf("bad T line %q", clip(l))
			}
			v[i] = n
		}
		if v[1] > 999999 || v[3] > 999999 {
			return scpLine{}, fmt.Errorf("bad T line %q", clip(l))
		}
		return scpLine{kind: 'T', mtime: v[0], atime: v[2]}, nil
	case 'C', 'D':
		rest := l[1:]
		sp := strings.IndexByte(rest, ' ')
		if sp != 4 {
			return scpLine{}, fmt.Errorf("bad mode in %q", clip(l))
		}
		mode, err := strconv.ParseUint(rest[:4], 8, 32)
		if err != nil || mode > 0o7777 {
			return scpLine{}, fmt.Errorf("bad mode in %q", clip(l))
		}
		rest = rest[5:]
		sp = strings.IndexByte(rest, ' ')
		if sp <= 0 {
			return scpLine{}, fmt.Errorf("bad size in %q", clip(l))
		}
		size, err := strconv.ParseInt(rest[:sp], 10, 64)
		if err != nil || size < 0 {
			return scpLine{}, fmt.Errorf("bad size in %q", clip(l))
		}
		name := rest[sp+1:]
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return scpLine{}, fmt.Errorf("unexpected file name %q", clip(name))
		}
		return scpLine{kind: l[0], mode: fs.FileMode(mode) & fs.ModePerm, size: size, name: name}, nil
	}
	return scpLine{}, fmt.Errorf("unknown control line %q", clip(l))
}

func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// exec runs an exec request: scp, or a refusal.
func (ss *session) exec(cmd string) {
	c, err := parseSCPCommand(cmd)
	if errors.Is(err, errNotSCP) {
		ss.refuse("exec " + clip(cmd))
		return
	}
	if err != nil {
		ss.log.Info("scp refused", "command", clip(cmd), "error", err)
		ss.ch.Stderr().Write([]byte("tarn: " + err.Error() + "\r\n"))
		ss.exit(1)
		return
	}
	ss.log.Info("scp", "command", clip(cmd))
	sc := &scp{
		ss: ss, fs: ss.fsys(), cmd: c,
		r: bufio.NewReader(chanRW{Channel: ss.ch, act: ss.act}), w: ss.ch,
	}
	var code uint32
	if c.sink {
		err = sc.sinkMain()
	} else {
		err = sc.sourceMain()
	}
	if err != nil || sc.errors > 0 {
		code = 1
		if err != nil {
			ss.log.Info("scp ended", "error", err)
		}
	}
	ss.exit(code)
}

// scp runs one legacy scp transfer.
type scp struct {
	ss     *session
	fs     *fsys
	cmd    *scpCmd
	r      *bufio.Reader
	w      io.Writer
	errors int // files that failed (the exit status is 1)
}

// errFatal ends the transfer after a \2 message was sent.
var errFatal = errors.New("scp: fatal error sent")

func (sc *scp) ack() error {
	_, err := sc.w.Write([]byte{0})
	return err
}

// warn sends a \1 message: this file failed, the transfer goes on.
func (sc *scp) warn(msg string) error {
	sc.errors++
	_, err := sc.w.Write([]byte("\x01scp: " + oneLineUTF8(msg) + "\n"))
	return err
}

// fatal sends a \2 message: the transfer ends.
func (sc *scp) fatal(msg string) error {
	sc.errors++
	sc.w.Write([]byte("\x02scp: " + oneLineUTF8(msg) + "\n"))
	return errFatal
}

// readLine reads a control line (without its newline).
func (sc *scp) readLine() (string, error) {
	var b strings.Builder
	for {
		c, err := sc.r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return b.String(), nil
		}
		if b.Len() >= maxLineLen {
			return "", fmt.Errorf("control line longer than %d bytes", maxLineLen)
		}
		b.WriteByte(c)
	}
}

// resolve turns an scp path into a drive path: relative paths, "~" and
// "~/x" are under the account's root.
func resolve(p string) string {
	if p == "~" {
		p = "/"
	} else if strings.HasPrefix(p, "~/") {
		p = p[1:]
	}
	return cleanPath(p)
}

func (sc *scp) sinkMain() error {
	ctx := sc.ss.ctx
	target := resolve(sc.cmd.paths[0])
	if sc.fs.ro {
		return sc.fatal(target + ": permission denied (read-only account)")
	}
	// The root is always a directory, and is not asked: a Stat of the
	// root makes its pending write-behind links first (its size is its
	// entry count), a directory change per scp into the root.
	isDir := target == "/"
	if !isDir {
		if info, err := sc.fs.d.Stat(ctx, target); err == nil {
			isDir = info.IsDir()
		}
	}
	if sc.cmd.dirTarget && !isDir {
		return sc.fatal(target + ": not a directory")
	}
	if err := sc.ack(); err != nil {
		return err
	}
	return sc.sink(ctx, target, isDir, 0)
}

// sink receives into target (a directory when isDir) until E or the end.
func (sc *scp) sink(ctx context.Context, target string, isDir bool, depth int) error {
	var times *scpLine
	for {
		first, err := sc.r.ReadByte()
		if err == io.EOF {
			if depth > 0 {
				return errors.New("scp: connection ended inside a directory")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if first == 1 || first == 2 {
			msg, _ := sc.readLine()
			sc.ss.log.Info("scp client reports", "message", clip(msg))
			if first == 2 {
				return errors.New("scp client: " + msg)
			}
			continue
		}
		sc.r.UnreadByte()
		line, err := sc.readLine()
		if err != nil {
			return err
		}
		l, err := parseSCPLine(line)
		if err != nil {
			return sc.fatal("protocol error: " + err.Error())
		}
		switch l.kind {
		case 'T':
			t := l // kept for the next C or D (used with -p)
			times = &t
			if err := sc.ack(); err != nil {
				return err
			}
		case 'E':
			if depth == 0 {
				return sc.fatal("protocol error: E outside a directory")
			}
			return sc.ack()
		case 'D':
			if !sc.cmd.recursive {
				return sc.fatal("received directory without -r")
			}
			if depth >= vdrive.MaxDepth {
				return sc.fatal("directories nested too deep")
			}
			np := target
			if isDir {
				np = path.Join(target, l.name)
			}
			if err := sc.mkdir(ctx, np, l, times); err != nil {
				if werr := sc.warn(err.Error()); werr != nil {
					return werr
				}
				if err := sc.skipDir(); err != nil {
					return err
				}
				times = nil
				continue
			}
			times = nil
			if err := sc.ack(); err != nil {
				return err
			}
			if err := sc.sink(ctx, np, true, depth+1); err != nil {
				return err
			}
		case 'C':
			np := target
			if isDir {
				np = path.Join(target, l.name)
			}
			err := sc.receiveFile(ctx, np, l, times)
			times = nil
			if errors.Is(err, errProtocol) {
				return err
			}
			if err != nil {
				if werr := sc.warn(err.Error()); werr != nil {
					return werr
				}
				continue
			}
			if err := sc.ack(); err != nil {
				return err
			}
		}
	}
}

// errProtocol: the stream cannot go on.
var errProtocol = errors.New("scp: protocol error")

// skipDir answers a directory that could not be made: it consumes the
// directory's lines and files, refusing each.
func (sc *scp) skipDir() error {
	depth := 1
	for depth > 0 {
		line, err := sc.readLine()
		if err != nil {
			return err
		}
		l, err := parseSCPLine(line)
		if err != nil {
			return sc.fatal("protocol error: " + err.Error())
		}
		switch l.kind {
		case 'D':
			depth++
		case 'E':
			depth--
		case 'C':
			if _, err := io.CopyN(io.Discard, sc.r, l.size+1); err != nil {
				return err
			}
		}
		if err := sc.ack(); err != nil {
			return err
		}
	}
	return nil
}

func (sc *scp) mkdir(ctx context.Context, p string, l scpLine, times *scpLine) error {
	info, err := sc.fs.d.Stat(ctx, p)
	switch {
	case err == nil && !info.IsDir():
		return fmt.Errorf("%s: not a directory", p)
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if err := sc.fs.d.Mkdir(ctx, p); err != nil {
			return fmt.Errorf("%s", toStatus("mkdir", p, err).Error())
		}
	default:
		return fmt.Errorf("%s", toStatus("mkdir", p, err).Error())
	}
	var mode *fs.FileMode
	var mtime *time.Time
	if sc.cmd.preserve {
		m := l.mode
		mode = &m
		if times != nil {
			t := time.Unix(times.mtime, 0)
			mtime = &t
		}
	}
	if mode != nil && *mode == defaultDirMode {
		mode = nil
	}
	if mode != nil || mtime != nil {
		if err := sc.fs.d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error {
			applyMeta(m, mode, mtime)
			return nil
		}); err != nil {
			return fmt.Errorf("%s", toStatus("setstat", p, err).Error())
		}
	}
	return nil
}

// receiveFile reads a file's bytes and its trailing \0 and stores it at p
// through a spool, as an SFTP upload is (so a transient grid refusal is
// retried from the spool). The client's data is always consumed, so a
// refused file does not break the stream; the file is linked only if
// every byte reached the grid.
func (sc *scp) receiveFile(ctx context.Context, p string, l scpLine, times *scpLine) error {
	if sc.fs.limit != nil {
		// Refused at its C line: the client then skips the file's bytes.
		if _, err := sc.fs.limit.check(ctx, l.size); err != nil {
			sc.fs.log.Warn("refused: file too large", "path", p, "account", sc.fs.account, "error", err)
			return toStatus("write", p, err)
		}
	}
	if err := sc.ack(); err != nil {
		return errProtocol
	}
	// A received file replaces whatever file is at p (as SFTP's
	// WRITE|CREAT|TRUNC open): a miss in the drive's cached directory (a
	// new name, the usual case) is taken as it is, saving a directory
	// read per file; a directory made there meanwhile by another client
	// refuses the link, as for SFTP.
	var refused error
	if info, err := sc.fs.d.StatCached(ctx, p); err == nil && info.IsDir() {
		refused = toStatus("open", p, vdrive.ErrIsDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		refused = toStatus("open", p, err)
	}
	var h *writeHandle
	var dst io.Writer = io.Discard
	if refused == nil {
		f, err := os.CreateTemp(sc.fs.spool, "scp-*.spool")
		if err != nil {
			refused = toStatus("open", p, fmt.Errorf("spool file: %w", err))
		} else {
			os.Remove(f.Name())
			defer f.Close()
			h = newWriteHandle(sc.fs, p, f, true)
			dst = f
		}
	}
	n, err := io.CopyN(dst, sc.r, l.size)
	if err != nil {
		if n < l.size && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) || h == nil {
			return errProtocol // the client is gone
		}
		// The spool failed: drain the rest so the stream goes on.
		if _, derr := io.CopyN(io.Discard, sc.r, l.size-n); derr != nil {
			return errProtocol
		}
		refused, h = toStatus("write", p, fmt.Errorf("spool: %w", err)), nil
	}
	end, err := sc.r.ReadByte()
	if err != nil {
		return errProtocol
	}
	if refused != nil {
		return refused
	}
	if end != 0 {
		return fmt.Errorf("%s: the client reported an error", p)
	}
	h.size = l.size
	m := l.mode
	if !sc.cmd.preserve {
		m &^= umask
	}
	if m != defaultFileMode {
		h.mode = &m
	}
	if sc.cmd.preserve && times != nil {
		t := time.Unix(times.mtime, 0)
		h.mtime = &t
	}
	return h.upload()
}

// readAck reads the client's answer to a line or a file.
func (sc *scp) readAck() error {
	c, err := sc.r.ReadByte()
	if err != nil {
		return err
	}
	switch c {
	case 0:
		return nil
	case 1, 2:
		msg, _ := sc.readLine()
		if c == 2 {
			return fmt.Errorf("scp client: %s", msg)
		}
		return &clientWarning{msg}
	}
	return fmt.Errorf("scp: unexpected answer byte %d", c)
}

type clientWarning struct{ msg string }

func (w *clientWarning) Error() string { return "scp client: " + w.msg }

func (sc *scp) sourceMain() error {
	ctx := sc.ss.ctx
	if err := sc.readAck(); err != nil {
		return err
	}
	for _, p := range sc.cmd.paths {
		if err := sc.send(ctx, resolve(p), 0); err != nil {
			var cw *clientWarning
			if errors.As(err, &cw) {
				continue
			}
			return err
		}
	}
	return nil
}

// send sends the file or (with -r) directory at p.
func (sc *scp) send(ctx context.Context, p string, depth int) error {
	info, err := sc.fs.d.Stat(ctx, p)
	if err != nil {
		return sc.warn(toStatus("stat", p, err).Error())
	}
	name := path.Base(p)
	if p == "/" {
		name = "."
	}
	if sc.cmd.preserve {
		t := info.ModTime().Unix()
		if t < 0 {
			t = 0
		}
		if _, err := fmt.Fprintf(sc.w, "T%d 0 %d 0\n", t, t); err != nil {
			return err
		}
		if err := sc.readAck(); err != nil {
			return err
		}
	}
	if info.IsDir() {
		if !sc.cmd.recursive {
			return sc.warn(p + ": not a regular file")
		}
		if depth >= vdrive.MaxDepth {
			return sc.warn(p + ": directories nested too deep")
		}
		list, err := sc.fs.d.ReadDir(ctx, p)
		if err != nil {
			return sc.warn(toStatus("opendir", p, err).Error())
		}
		if _, err := fmt.Fprintf(sc.w, "D%04o 0 %s\n", uint32(info.Mode().Perm()), name); err != nil {
			return err
		}
		if err := sc.readAck(); err != nil {
			return err
		}
		for _, in := range list {
			if err := sc.send(ctx, path.Join(p, in.Name()), depth+1); err != nil {
				var cw *clientWarning
				if errors.As(err, &cw) {
					continue
				}
				return err
			}
		}
		if _, err := sc.w.Write([]byte("E\n")); err != nil {
			return err
		}
		return sc.readAck()
	}
	f, err := sc.fs.d.Open(ctx, p)
	if err != nil {
		return sc.warn(toStatus("open", p, err).Error())
	}
	size := f.Size()
	if _, err := fmt.Fprintf(sc.w, "C%04o %d %s\n", uint32(info.Mode().Perm()), size, name); err != nil {
		return err
	}
	if err := sc.readAck(); err != nil {
		return err
	}
	var n int64
	if wt, ok := f.(io.WriterTo); ok {
		n, err = wt.WriteTo(sc.w)
	} else {
		n, err = io.Copy(sc.w, io.NewSectionReader(f, 0, size))
	}
	if err != nil || n != size {
		// The client waits for size bytes: the stream cannot go on.
		return fmt.Errorf("scp: read %s: %d of %d bytes: %v", p, n, size, err)
	}
	if err := sc.ack(); err != nil {
		return err
	}
	return sc.readAck()
}
