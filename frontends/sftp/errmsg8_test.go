package sftp

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStatusMessageOneLine: a status message naming a path with a
// newline, a control character, a line separator or bytes that are not
// UTF-8 is one line of valid UTF-8 (the SFTP spec's message is UTF-8;
// clients print it as one line), the path quoted as strconv.Quote does.
// Before, the path went in raw: a two-line or non-UTF-8 message.
func TestStatusMessageOneLine(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := rawSession(t, e)
	for _, tc := range []struct {
		name string
		path string
		op   func(p string) (reply, error)
	}{
		{"stat newline", "/no\nsuch", func(p string) (reply, error) { return c.path1(pStat, p) }},
		{"open carriage return", "/no\r\nsuch", func(p string) (reply, error) { return c.open(p, 1, pkt{}.u32(0)) }},
		{"remove not utf-8", "/bad\xffname", func(p string) (reply, error) { return c.path1(pRemove, p) }},
		{"mkdir line separator", "/a\u2028b/c", func(p string) (reply, error) { return c.call(pMkdir, pkt{}.str(p).u32(0)) }},
		{"rename escape", "/esc\x1b[31mred", func(p string) (reply, error) { return c.path2(pRename, p, "/x") }},
		{"plain", "/plain name", func(p string) (reply, error) { return c.path1(pStat, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.op(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if r.typ != pStatus || r.code == 0 {
				t.Fatalf("reply type %d code %d, want a failure status", r.typ, r.code)
			}
			if strings.ContainsAny(r.msg, "\n\r\x1b\u2028") || !utf8.ValidString(r.msg) {
				t.Fatalf("message %q is not one line of UTF-8", r.msg)
			}
			want := strconv.Quote(tc.path)
			if tc.name == "plain" {
				want = " " + tc.path + ": " // as it is
			}
			if !strings.Contains(r.msg, want) {
				t.Fatalf("message %q does not name the path as %s", r.msg, want)
			}
		})
	}
}

// TestOneLineUTF8: whatever a reason holds, the message is one line of
// valid UTF-8 and says each odd byte.
func TestOneLineUTF8(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "read /a: file does not exist", "read /a: file does not exist"},
		{"newline", "x: a\nb", `x: a\nb`},
		{"not utf-8", "x: \xff\xfe ok", `x: \xff\xfe ok`},
		{"replacement char kept", "x: \uFFFD", "x: \uFFFD"},
		{"separator", "x: a\u2029b", `x: a\u2029b`},
		{"nul", "x: a\x00b", `x: a\x00b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := oneLineUTF8(tc.in); got != tc.want {
				t.Fatalf("oneLineUTF8(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
