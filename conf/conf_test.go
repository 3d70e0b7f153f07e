package conf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/broken/*.toml")

func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	grid, _ := filepath.Glob("examples/grid/*.toml")
	files = append(files, grid...)
	if len(files) < 8 {
		t.Fatalf("found %d example profiles, want at least 8", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(p.Roles()) == 0 {
				t.Fatal("no roles")
			}
			if !filepath.IsAbs(p.Node.StateDir) || !filepath.IsAbs(p.Grid.SecretFile) {
				t.Fatalf("paths not absolute: %q %q", p.Node.StateDir, p.Grid.SecretFile)
			}
		})
	}
}

func TestExampleValues(t *testing.T) {
	p, err := Load("examples/client.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("examples")
	tests := []struct {
		name      string
		got, want any
	}{
		{"dir", p.Dir, dir},
		{"name", p.Node.Name, "laptop"},
		{"state dir defaults to node folder", p.Node.StateDir, dir},
		{"log level default", p.Node.LogLevel, "info"},
		{"shares", p.Client.Shares, Shares{K: 3, H: 7, N: 10}},
		{"segment", p.Client.SegmentSize, Size(1 << 20)},
		{"timeout", p.Client.ServerTimeout.D(), 30 * time.Second},
		{"link write-behind", p.Client.LinkWriteBehind.D(), 250 * time.Millisecond},
		{"convergence file", p.Client.ConvergenceSecretFile, filepath.Join(dir, "private", "convergence.secret")},
		{"codec default", p.Plugins.Codec.Name, "reedsolomon"},
		{"storage default", p.Plugins.Storage.Name, "disk"},
		{"transport default", p.Plugins.Transport.Name, "tcp"},
		{"fast path default", p.Plugins.Codec.FastPath, true},
		{"webdav enabled default", p.WebDAV[0].Enabled, true},
		{"webdav apple", p.WebDAV[0].AppleDouble, "hide"},
		{"sftp host key default", p.SFTP[0].HostKeys, []string{filepath.Join(dir, "private", "ssh_host_ed25519_key")}},
		{"sftp sessions", p.SFTP[0].MaxSessions, 16},
		{"account root file", p.Accounts[1].RootCapFile, filepath.Join(dir, "private", "backup.root")},
		{"read only", p.Accounts[1].ReadOnly, true},
		{"roles", p.Roles(), []string{"client", "webdav", "sftp"}},
		{"line of shares.k", p.Line("client.shares.k"), 19},
		{"line of second account name", p.Line("accounts[1].name"), 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}

	all, err := Load("examples/all.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := all.Storage.Listen; !reflect.DeepEqual(got, []string{"tcp:127.0.0.1:3457"}) {
		t.Fatalf("single-string listen: got %q", got)
	}
	if got := all.Client.LinkWriteBehind.D(); got != 100*time.Millisecond {
		t.Fatalf("link_write_behind default %v, want 100ms", got)
	}
	if got := all.Node.StateDir; got != filepath.Join(dir, "state") {
		t.Fatalf("state dir %q", got)
	}
	if got := all.Grid.SecretFile; got != filepath.Join(dir, "state", "private", "grid.secret") {
		t.Fatalf("grid secret default under state dir: %q", got)
	}
	st, err := Load("examples/storage.toml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.Plugins.Storage.ConfigJSON()
	if err != nil || string(j) != `{"path":"shares"}` {
		t.Fatalf("config json %s, %v", j, err)
	}
}

// TestBroken runs the golden cases in testdata/broken: each file is a
// profile, a line "----- expect", and the exact error text (with the file
// name written as FILE).
func TestBroken(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("found %d broken cases, want at least 15", len(files))
	}
	const sep = "----- expect\n"
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), sep)
			if !ok {
				t.Fatalf("no %q separator", sep)
			}
			_, err = Parse("FILE", []byte(input))
			if err == nil {
				t.Fatal("loaded without error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, not ErrorList: %v", err, err)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(f, []byte(input+sep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, want)
			}
			for i := 1; i < len(list); i++ {
				if list[i].Line < list[i-1].Line {
					t.Fatalf("errors not sorted by line: %v", list)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, ErrNoProfile) {
		t.Fatalf("got %v, want ErrNoProfile", err)
	}
}

func TestLoadDirAndFile(t *testing.T) {
	dir := t.TempDir()
	text := "[storage]\nenabled = true\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{dir, filepath.Join(dir, FileName)} {
		p, err := Load(arg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Dir != dir || p.Node.Name != filepath.Base(dir) {
			t.Fatalf("Load(%s): dir %q name %q", arg, p.Dir, p.Node.Name)
		}
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		bad  bool
	}{
		{in: "10GiB", want: 10 << 30},
		{in: "512MB", want: 512_000_000},
		{in: "1MiB", want: 1 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: "10 gib", want: 10 << 30},
		{in: "1kB", want: 1000},
		{in: "1_000", want: 1000},
		{in: "0.5B", bad: true},
		{in: "-1GiB", bad: true},
		{in: "GiB", bad: true},
		{in: "10G", bad: true},
		{in: "10XB", bad: true},
		{in: "1.2.3MB", bad: true},
		{in: "", bad: true},
		{in: "9999999PiB", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Fatalf("String %q does not round trip: %d, %v", got.String(), back, err)
			}
		})
	}
}

func TestNodeURL(t *testing.T) {
	kh := "khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya"
	for _, good := range []string{
		"tarn://" + kh + "@tcp:10.0.0.5:3458",
		"tarn://" + strings.ToUpper(kh) + "@tcp:h:1,tor:abc.onion:4410",
	} {
		if err := CheckNodeURL(good); err != nil {
			t.Errorf("CheckNodeURL(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{
		"", "tarn://", "http://" + kh + "@tcp:h:1", "tarn://" + kh, "tarn://short@tcp:h:1",
		"tarn://" + kh + "@tcp:h:70000", "tarn://" + kh + "@tcp:h:1,", "tarn://" + kh + "@tcp:0.0.0.0:1",
		"tarn://" + kh + "@nocolon",
	} {
		if err := CheckNodeURL(bad); !errors.Is(err, ErrBadNodeURL) {
			t.Errorf("CheckNodeURL(%q) = %v, want ErrBadNodeURL", bad, err)
		}
	}
	if got, err := CanonicalKeyHash(strings.ToUpper(kh) + "===="); err != nil || got != kh {
		t.Errorf("CanonicalKeyHash: %q, %v", got, err)
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment [not.a.table]
a = "x # not a comment"
b.c = 1
"quoted key".d = '''
multi
line = 3
'''
[t]
arr = [
  1, # one
  { x = 2, y = [3] },
]
[[e]]
k = 1979-05-27 07:32:00Z
[[e]]
k = """a"b""""
[e.sub]
z = true
`
	got := keyLines(src)
	want := map[string]int{
		"a": 2, "b": 3, "b.c": 3, `"quoted key".d`: 4, "t": 8, "t.arr": 9, "t.arr[0]": 10,
		"t.arr[1]": 11, "t.arr[1].x": 11, "t.arr[1].y[0]": 11, "e": 13, "e[0]": 13, "e[0].k": 14,
		"e[1]": 15, "e[1].k": 16, "e[1].sub": 17, "e[1].sub.z": 18,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("line of %s = %d, want %d", k, got[k], w)
		}
	}
	if _, ok := got["line"]; ok {
		t.Error("key inside a multi-line string was recorded")
	}

	crlf := keyLines("[a]\r\nb = 1\r\n\r\n[[c]]\r\nd = { e = [\r\n 1 ] }\r\n")
	for k, w := range map[string]int{"a.b": 2, "c[0]": 4, "c[0].d": 5, "c[0].d.e[0]": 6} {
		if crlf[k] != w {
			t.Errorf("CRLF: line of %s = %d, want %d", k, crlf[k], w)
		}
	}
}
