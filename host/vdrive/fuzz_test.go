package vdrive_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tarnfs/tarn/host/vdrive"
)

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		bad      bool
	}{
		{name: "root empty", in: ""},
		{name: "root slash", in: "/"},
		{name: "relative", in: "a/b", want: []string{"a", "b"}},
		{name: "absolute", in: "/a/b", want: []string{"a", "b"}},
		{name: "trailing slash", in: "/a/b/", want: []string{"a", "b"}},
		{name: "nfc", in: "/e\u0301", want: []string{"\u00e9"}},
		{name: "double slash", in: "/a//b", bad: true},
		{name: "two trailing", in: "/a//", bad: true},
		{name: "only slashes", in: "///", bad: true},
		{name: "dotdot", in: "/a/../b", bad: true},
		{name: "dot", in: "./a", bad: true},
		{name: "nul", in: "/a\x00", bad: true},
		{name: "bad utf8", in: "/\xc3", bad: true},
		{name: "too long", in: "/" + strings.Repeat("a/", vdrive.MaxPathLen/2), bad: true},
		{name: "too deep", in: strings.Repeat("/a", vdrive.MaxDepth+1), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vdrive.SplitPath(tc.in)
			if tc.bad {
				if !errors.Is(err, vdrive.ErrBadName) {
					t.Fatalf("SplitPath(%q) = %q, %v; want ErrBadName", tc.in, got, err)
				}
				return
			}
			if err != nil || strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Fatalf("SplitPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"", "/", "/a/b/", "a//b", "/..", "/e\u0301", "/a\x00", strings.Repeat("/x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		parts, err := vdrive.SplitPath(p)
		if err != nil {
			if !errors.Is(err, vdrive.ErrBadName) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("SplitPath(%q): error %q is not a one-line ErrBadName", p, err)
			}
			return
		}
		for _, c := range parts {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "/\x00") || !utf8.ValidString(c) || !norm.NFC.IsNormalString(c) {
				t.Fatalf("SplitPath(%q) gave bad component %q", p, c)
			}
		}
		// The canonical form parses to the same components (unless it grew
		// past the limit: NFC and the leading "/" may lengthen it).
		if len(vdrive.JoinPath(parts)) > vdrive.MaxPathLen {
			return
		}
		again, err := vdrive.SplitPath(vdrive.JoinPath(parts))
		if err != nil || strings.Join(again, "/") != strings.Join(parts, "/") {
			t.Fatalf("JoinPath(SplitPath(%q)) does not round-trip: %q, %v", p, again, err)
		}
	})
}
