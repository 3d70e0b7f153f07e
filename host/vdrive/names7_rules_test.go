package vdrive_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestNameRules: names as desktop and command-line clients send them
// (docs/formats.md, "Names"). Linux's rule holds (anything but "/" and
// NUL) for valid UTF-8, kept exactly as sent but for Unicode
// normalisation: control characters, Windows' reserved characters, spaces
// and dots at either end, and case are kept. Refused with ErrBadName, one
// line, making nothing: ".", "..", "/" inside a name, NUL, bytes that are
// not UTF-8. A name counts its bytes in NFC: 255 bytes sent may be more
// after NFC (refused), fewer (kept).
func TestNameRules(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 3*time.Minute)
	if err := d.Mkdir(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	qa := "\u0958" // DEVANAGARI QA: excluded from composition, NFC is two runes (6 bytes)
	for _, tc := range []struct {
		name string
		in   string // the name as sent
		want error  // nil: kept
		// stored is the name listed, when not in.
		stored string
	}{
		{name: "control characters", in: "Icon\r\x01\x1f\x7f"},
		{name: "newline and tab", in: "two\nlines\t"},
		{name: "windows reserved", in: `a<b>c:d"e\f|g?h*`},
		{name: "spaces at both ends", in: "  both ends  "},
		{name: "trailing dot", in: "ends with a dot."},
		{name: "only spaces", in: "   "},
		{name: "three dots", in: "..."},
		{name: "bidi override", in: "evil\u202Etxt.exe"},
		{name: "nfd", in: "cafe\u0301 nfd", stored: "caf\u00e9 nfd"},
		{name: "255 bytes nfd 170 nfc", in: strings.Repeat("e\u0301", 85), stored: strings.Repeat("\u00e9", 85)},
		{name: "255 bytes sent 510 nfc", in: strings.Repeat(qa, 85), want: vdrive.ErrNameTooLong},
		{name: "dot", in: ".", want: vdrive.ErrBadName},
		{name: "dot dot", in: "..", want: vdrive.ErrBadName},
		{name: "nul", in: "a\x00b", want: vdrive.ErrBadName},
		{name: "invalid byte", in: "a\xffb", want: vdrive.ErrBadName},
		{name: "cut rune", in: "caf\xc3", want: vdrive.ErrBadName},
		{name: "overlong slash", in: "a\xc0\xafb", want: vdrive.ErrBadName},
		{name: "surrogate half", in: "a\xed\xa0\x80b", want: vdrive.ErrBadName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := tc.in
			if tc.stored != "" {
				stored = tc.stored
			}
			// A name kept is made three times, as a file, a folder and a
			// link (suffixes keep them apart); a refused one is sent as
			// it is to each.
			dir, link := " dir", " link"
			if tc.want != nil {
				dir, link = "", ""
			}
			ops := []struct {
				op string
				do func(name string) error
			}{
				{"put", func(n string) error { return d.Put(ctx, "/d/"+n, strings.NewReader(tc.name), int64(len(tc.name)), nil) }},
				{"mkdir", func(n string) error { return d.Mkdir(ctx, "/d/"+n+dir) }},
				{"linkmany", func(n string) error { return d.LinkMany(ctx, "/d", map[string]string{n + link: litCap("l")}) }},
				{"rename", func(n string) error { return d.Rename(ctx, "/d", "/"+n+dir) }},
			}
			for _, o := range ops {
				if o.op == "rename" && tc.want == nil {
					continue
				}
				err := o.do(tc.in)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("%s %+q: %v", o.op, tc.in, err)
					}
					continue
				}
				if !errors.Is(err, tc.want) || !errors.Is(err, vdrive.ErrBadName) || !errors.Is(err, syscall.EINVAL) {
					t.Fatalf("%s %+q: %v, want %v", o.op, tc.in, err, tc.want)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !utf8.ValidString(msg) {
					t.Fatalf("%s: message %+q is not one line of UTF-8", o.op, msg)
				}
			}
			if tc.want != nil {
				return
			}
			// Kept as sent (in NFC), found by either spelling.
			for _, p := range []string{tc.in, stored} {
				info, err := d.Stat(ctx, "/d/"+p)
				if err != nil || info.Name() != stored {
					t.Fatalf("stat %+q: %v, %v", p, info, err)
				}
				if b := get(t, d, "/d/"+p); string(b) != tc.name {
					t.Fatalf("read %+q: %q", p, b)
				}
			}
			for _, suffix := range []string{"", " dir", " link"} {
				if _, err := d.Stat(ctx, "/d/"+stored+suffix); err != nil {
					t.Fatalf("stat %+q: %v", stored+suffix, err)
				}
			}
		})
	}
	// A message about a name with control characters is one line.
	if _, err := d.Stat(ctx, "/two\nlines/x"); !errors.Is(err, vdrive.ErrNotExist) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("stat under a missing folder with a newline: %q", err)
	}
	// Listed exactly as stored, each once.
	got := names(t, d, "/d")
	seen := map[string]int{}
	for _, n := range got {
		seen[n]++
		if seen[n] > 1 {
			t.Fatalf("%+q listed twice", n)
		}
	}
	for _, want := range []string{"Icon\r\x01\x1f\x7f", "  both ends  ", "caf\u00e9 nfd", `a<b>c:d"e\f|g?h*`, "   "} {
		if seen[want] != 1 {
			t.Fatalf("%+q not listed: %+q", want, got)
		}
	}
	if len(got) != 3*10 {
		t.Fatalf("%d entries listed, want 30: %+q", len(got), got)
	}
	// Case is kept: two names.
	put(t, d, "/d/Readme", []byte("1"))
	put(t, d, "/d/README", []byte("2"))
	if string(get(t, d, "/d/Readme")) != "1" || string(get(t, d, "/d/README")) != "2" {
		t.Fatal("names differing by case are not two files")
	}
	// A name over 1,024 bytes is too long for any operation (ENAMETOOLONG,
	// as a local file system answers), not only a bad name.
	for op, err := range map[string]error{
		"stat":     func() error { _, err := d.Stat(ctx, "/d/"+strings.Repeat("n", 2000)); return err }(),
		"linkmany": d.LinkMany(ctx, "/d", map[string]string{strings.Repeat("n", 2000): litCap("x")}),
	} {
		var tl *vdrive.NameTooLongError
		if !errors.Is(err, syscall.ENAMETOOLONG) || !errors.As(err, &tl) || tl.Len != 2000 {
			t.Fatalf("%s of a 2000-byte name: %v", op, err)
		}
	}
	// A bad name is said once: "bad name: \"..\" is reserved".
	if err := d.Mkdir(ctx, "/d/.."); err == nil || strings.Count(err.Error(), "bad") != 1 || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("mkdir ..: %q", err)
	}
}

// TestNormalisationOneEntry: the NFC and NFD spellings of a name are one
// entry, whichever comes first, through a drive and a write-behind drive
// (pending links found by either spelling): the second write replaces
// the first (Replaced), a rename from one spelling to the other changes
// nothing, and a LinkMany holding both spellings is refused (which cap
// would win is not for vdrive to guess).
func TestNormalisationOneEntry(t *testing.T) {
	g := newGrid(t)
	n := names7Setup(t, g)
	root, d, b, wb := n.root, n.d, n.b, n.wb
	ctx := ctxFor(t, 3*time.Minute)
	nfc, nfd := "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m"
	for i, tc := range []struct {
		name          string
		d             *vdrive.Drive
		first, second string
	}{
		{"nfd then nfc", d, nfd, nfc},
		{"nfc then nfd", d, nfc, nfd},
		{"write-behind nfd then nfc", wb, nfd, nfc},
		{"write-behind nfc then nfd", wb, nfc, nfd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fmt.Sprintf("/n%d", i)
			if err := d.Mkdir(ctx, dir); err != nil {
				t.Fatal(err)
			}
			l1, err := tc.d.PutLinked(ctx, dir+"/"+tc.first, bytes.NewReader([]byte("one")), 3, nil)
			if err != nil || l1.Replaced || l1.Info.Name() != nfc {
				t.Fatalf("first put: %+v, %v", l1, err)
			}
			if info, err := tc.d.Stat(ctx, dir+"/"+tc.second); err != nil || info.Size() != 3 {
				t.Fatalf("stat by the other spelling: %v, %v", info, err)
			}
			l2, err := tc.d.PutLinked(ctx, dir+"/"+tc.second, bytes.NewReader([]byte("second")), 6, nil)
			if err != nil || !l2.Replaced {
				t.Fatalf("second put: %+v, %v: not a replacement", l2, err)
			}
			if err := tc.d.Rename(ctx, dir+"/"+tc.first, dir+"/"+tc.second); err != nil {
				t.Fatalf("rename to the other spelling: %v", err)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			d2 := open(t, g, root)
			if got := names(t, d2, dir); len(got) != 1 || got[0] != nfc {
				t.Fatalf("%s lists %+q, want one %+q", dir, got, nfc)
			}
			if got := get(t, d2, dir+"/"+tc.first); string(got) != "second" {
				t.Fatalf("read %q", got)
			}
		})
	}
	err := d.LinkMany(ctx, "/", map[string]string{nfc: litCap("a"), nfd: litCap("b")})
	if !errors.Is(err, vdrive.ErrInvalid) || !strings.Contains(err.Error(), "one name") {
		t.Fatalf("linkmany of both spellings: %v", err)
	}
	if _, err := d.Stat(ctx, "/"+nfc); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("refused linkmany made: %v", err)
	}
}
