package sftp

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseSCPLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want scpLine
		err  string
	}{
		{in: "C0644 12 a b.txt", want: scpLine{kind: 'C', mode: 0o644, size: 12, name: "a b.txt"}},
		{in: "D0755 0 dir", want: scpLine{kind: 'D', mode: 0o755, name: "dir"}},
		{in: "E", want: scpLine{kind: 'E'}},
		{in: "T1600000000 0 1600000001 0", want: scpLine{kind: 'T', mtime: 1600000000, atime: 1600000001}},
		{in: "C0644 12 ../x", err: "unexpected file name"},
		{in: "C0644 12 a/b", err: "unexpected file name"},
		{in: "C0644 12 ..", err: "unexpected file name"},
		{in: "C0644 -1 x", err: "bad size"},
		{in: "C644 1 x", err: "bad mode"},
		{in: "C0944 1 x", err: "bad mode"},
		{in: "C0644 99999999999999999999 x", err: "bad size"},
		{in: "T1 2 3", err: "bad T line"},
		{in: "T1 0 1 9999999", err: "bad T line"},
		{in: "Ex", err: "bad E line"},
		{in: "X", err: "unknown control line"},
		{in: "", err: "empty"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSCPLine(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseSCPCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // fmt of the parsed command, or "error: ..." substring
	}{
		{"scp -t -- /up", "sink r=false p=false d=false [/up]"},
		{"scp -v -r -p -d -t /a", "sink r=true p=true d=true [/a]"},
		{"scp -rpf 'a b' \"c d\" e\\ f", "source r=true p=true d=false [a b c d e f]"},
		{"/usr/bin/scp -f x", "source r=false p=false d=false [x]"},
		{"scp -t", "error: no path"},
		{"scp -t a b", "error: one target"},
		{"scp -x -t a", "error: unknown option"},
		{"scp -t -f a", "error: exactly one"},
		{"scp -f 'a", "error: unterminated"},
		{"scp -f a; rm -rf /", "error: shell syntax"},
		{"ls -l", "error: not an scp command"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := parseSCPCommand(tc.in)
			got := ""
			if err != nil {
				got = "error: " + err.Error()
				if !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) || !strings.HasPrefix(tc.want, "error: ") {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				return
			}
			kind := "sink"
			if c.source {
				kind = "source"
			}
			got = fmt.Sprintf("%s r=%v p=%v d=%v %v", kind, c.recursive, c.preserve, c.dirTarget, c.paths)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOpenPerm(t *testing.T) {
	if m, ok := openPerm([]byte{0, 0, 0x81, 0xa4}); !ok || m != 0o644 {
		t.Fatalf("perm %o %v", m, ok)
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, {0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := openPerm(b); ok {
			t.Fatalf("%v read as permissions", b)
		}
	}
}

// FuzzParseSCPLine: any line parses or fails cleanly; what parses has a
// name that stays in its folder.
func FuzzParseSCPLine(f *testing.F) {
	for _, s := range []string{"C0644 12 a b.txt", "D0755 0 dir", "E", "T1 0 2 0", "C0644 1 ..", "C0644 1 a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseSCPLine(s)
		if err != nil {
			return
		}
		if l.kind == 'C' || l.kind == 'D' {
			if l.name == "" || l.name == "." || l.name == ".." || strings.ContainsAny(l.name, "/\x00") || l.size < 0 {
				t.Fatalf("%q parsed to %+v", s, l)
			}
		}
	})
}

// FuzzParseSCPCommand: any command parses or fails cleanly.
func FuzzParseSCPCommand(f *testing.F) {
	for _, s := range []string{"scp -t -- /up", "scp -rpf 'a b' \"c d\" e\\ f", "scp -f 'a", "ls"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseSCPCommand(s)
		if err != nil {
			return
		}
		if c.sink == c.source || len(c.paths) == 0 {
			t.Fatalf("%q parsed to %+v", s, c)
		}
	})
}
