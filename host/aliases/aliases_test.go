package aliases

import (
	"errors"
	"github.com/tarnfs/tarn/host/identity"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	wcap = "tarn:dir:6fglmasv2lv7b6zeyk3f53cvxacbyuvgwjndr32nuu3dtffow6ia"
	rcap = "tarn:dir-ro:bextckhaujoh7pnxcdnn5m45ftlcqhkj5mrq7h42qzjekgjbmj5q:m454s3dwvd362ts4b4gs3xrksb4rl5iac5k6tgyca3j6tw7cxr4a"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want int
		err  error
	}{
		{"empty", "", 0, nil},
		{"comments and blanks", "# hi\n\n  \n", 0, nil},
		{"two", "docs: " + wcap + "\npub:" + rcap + "\n", 2, nil},
		{"no colon", "docs nothing", 0, ErrSyntax},
		{"no cap", "docs:", 0, ErrSyntax},
		{"bad name", "-docs: " + wcap, 0, ErrBadName},
		{"bad cap", "docs: tarn:dir:zz", 0, nil /* cap error */},
		{"duplicate", "a: " + wcap + "\na: " + rcap, 0, ErrSyntax},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.name == "bad cap" {
				if err == nil {
					t.Fatal("bad cap accepted")
				}
				return
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %v %v, want %d aliases", got, err, tc.want)
			}
		})
	}
}

func TestAddRemoveLookup(t *testing.T) {
	dir := t.TempDir()
	path := File(dir)
	if l, err := Load(path); err != nil || len(l) != 0 {
		t.Fatalf("missing file: %v %v", l, err)
	}
	if err := Add(path, "docs", wcap); err != nil {
		t.Fatal(err)
	}
	if err := Add(path, "pub", " "+rcap+"\n"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("alias file mode: %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Errorf("private folder mode %v", st.Mode())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, identity.ErrTooOpen) {
		t.Fatalf("alias file readable by others: got %v, want ErrTooOpen", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		err  error
		do   func() error
	}{
		{"add again", ErrExist, func() error { return Add(path, "docs", rcap) }},
		{"add bad name", ErrBadName, func() error { return Add(path, "a b", rcap) }},
		{"add bad cap", nil, func() error {
			if Add(path, "x", "hello") == nil {
				return errors.New("accepted")
			}
			return nil
		}},
		{"rm missing", ErrNotFound, func() error { return Remove(path, "nope") }},
		{"lookup missing", ErrNotFound, func() error { _, err := Lookup(path, "nope"); return err }},
	}
	for _, s := range steps {
		if err := s.do(); (s.err == nil && err != nil) || (s.err != nil && !errors.Is(err, s.err)) {
			t.Errorf("%s: %v, want %v", s.name, err, s.err)
		}
	}
	if c, err := Lookup(path, "pub"); err != nil || c != rcap {
		t.Errorf("lookup pub: %q %v", c, err)
	}
	if err := Remove(path, "docs"); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil || len(l) != 1 || l[0].Name != "pub" {
		t.Errorf("after rm: %v %v", l, err)
	}
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("garbage file: %v", err)
	}
}

func TestParseArg(t *testing.T) {
	lookup := func(n string) (string, error) {
		if n == "docs" {
			return wcap, nil
		}
		return "", ErrNotFound
	}
	cases := []struct {
		in       string
		local    string
		root     string
		path     string
		trailing bool
		err      error
	}{
		{in: "file.txt", local: "file.txt"},
		{in: "/abs/a:b", local: "/abs/a:b"},
		{in: "./docs:x", local: "./docs:x"},
		{in: "dir/docs:x", local: "dir/docs:x"},
		{in: "docs:", root: wcap, path: "/"},
		{in: "docs:a/b c/Ü.txt", root: wcap, path: "/a/b c/Ü.txt"},
		{in: "docs:/a/", root: wcap, path: "/a", trailing: true},
		{in: "nope:x", err: ErrNotFound},
		{in: wcap, root: wcap, path: "/"},
		{in: wcap + ":/a/b", root: wcap, path: "/a/b"},
		{in: wcap + "/a/b/", root: wcap, path: "/a/b", trailing: true},
		{in: rcap + ":/x", root: rcap, path: "/x"},
		{in: "tarn:lit:nbswy3dp", root: "tarn:lit:nbswy3dp", path: "/"},
		{in: "tarn:lit:nbswy3dp/x", err: ErrBadPath},
		{in: "tarn:dir:zz/x", err: ErrBadPath},
		{in: "", err: ErrBadPath},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			a, err := ParseArg(tc.in, lookup)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Local != tc.local || a.Root != tc.root || a.Path != tc.path || a.Trailing != tc.trailing {
				t.Errorf("got %+v", a)
			}
			if a.IsGrid() && strings.Contains(a.String(), "6fglmasv2lv7b6zeyk3f53") {
				t.Errorf("String shows the whole cap: %s", a.String())
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("docs: " + wcap + "\n# c\n"))
	f.Add([]byte("a:b:c\n\n:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		for _, a := range l {
			if !ValidName(a.Name) || a.Cap == "" {
				t.Fatalf("parsed a bad alias %+v", a)
			}
		}
	})
}

func FuzzParseArg(f *testing.F) {
	for _, s := range []string{"docs:a/b", wcap + ":/x", "x", "tarn:", "tarn:dir:/", ":x", "a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArg(s, func(string) (string, error) { return wcap, nil })
		if err != nil {
			return
		}
		if a.IsGrid() == (a.Local != "") {
			t.Fatalf("%q: both or neither local and grid: %+v", s, a)
		}
		if a.IsGrid() && !strings.HasPrefix(a.Path, "/") {
			t.Fatalf("%q: path %q not absolute", s, a.Path)
		}
	})
}
