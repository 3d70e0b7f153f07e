package conf

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schemaKeys lists every key of the schema by walking the Profile type:
// "node.name", "webdav.listen" (array entries without an index),
// "plugins.codec.config" (a free table is one key).
func schemaKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			if name == "" || name == "-" {
				continue
			}
			k := joinKey(prefix, name)
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != sizeType && ft != durationType {
				walk(k, ft)
				continue
			}
			keys = append(keys, k)
		}
	}
	walk("", reflect.TypeFor[Profile]())
	sort.Strings(keys)
	return keys
}

// withIndexes turns "webdav.listen" into "webdav[0].listen", as keyLines
// names the key in a file with one [[webdav]] entry.
func withIndexes(k string) string {
	for _, arr := range []string{"grid.servers", "webdav", "sftp", "accounts"} {
		if strings.HasPrefix(k, arr+".") {
			return arr + "[0]" + k[len(arr):]
		}
	}
	return k
}

func TestSchemaKeys(t *testing.T) {
	keys := schemaKeys()
	for _, want := range []string{"node.name", "client.shares.k", "plugins.codec.config", "webdav.lock_timeout", "accounts.authorized_keys", "grid.servers.key_hash"} {
		if i := sort.SearchStrings(keys, want); i == len(keys) || keys[i] != want {
			t.Errorf("schema walk misses %s", want)
		}
	}
	if len(keys) < 60 {
		t.Errorf("schema walk found %d keys, want at least 60", len(keys))
	}
}

// TestDocsCoverSchema parses docs/configuration.md: every row of a table
// whose first column is a key in backticks documents that key. Every key
// of the schema must be documented, and nothing else.
func TestDocsCoverSchema(t *testing.T) {
	md, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([a-z0-9_.]+)`\\s*\\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(md), -1) {
		if documented[m[1]] {
			t.Errorf("%s is documented twice", m[1])
		}
		documented[m[1]] = true
	}
	for _, k := range schemaKeys() {
		if !documented[k] {
			t.Errorf("%s is in the schema but not in docs/configuration.md", k)
		}
		delete(documented, k)
	}
	for k := range documented {
		t.Errorf("%s is documented but not in the schema", k)
	}
}

// uncomment turns "#key = value" and "#[table]" lines into settings,
// leaving prose ("# text") alone.
func uncomment(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > 1 && l[0] == '#' && l[1] != ' ' && l[1] != '#' {
			lines[i] = l[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func TestCommented(t *testing.T) {
	kh := "khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya"
	for _, role := range TemplateRoles {
		t.Run(role, func(t *testing.T) {
			text, err := Commented(Template{Role: role, Name: "n-" + role, Introducers: []string{"tarn://" + kh + "@tcp:intro:3458"}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse("/nodes/x/tarn.toml", text)
			if err != nil {
				t.Fatalf("the written profile does not load:\n%v", err)
			}
			wantRoles := map[string]string{"introducer": "introducer", "storage": "storage", "client": "client", "all": "introducer storage client"}[role]
			if got := strings.Join(p.Roles(), " "); got != wantRoles {
				t.Fatalf("roles %q, want %q", got, wantRoles)
			}
			if p.Node.Name != "n-"+role || p.Grid.SecretFile != "/nodes/x/private/grid.secret" {
				t.Fatalf("name %q secret %q", p.Node.Name, p.Grid.SecretFile)
			}
			// Every key is there, as a setting or a commented-out one.
			all := uncomment(string(text))
			lines := keyLines(all)
			for _, k := range schemaKeys() {
				if _, ok := lines[withIndexes(k)]; !ok {
					t.Errorf("%s is missing from the %s profile", k, role)
				}
			}
			if role == "all" {
				// With every example setting on, the only complaint is that
				// each plugin now has both a name and a path.
				_, err := Parse("/nodes/x/tarn.toml", []byte(all))
				list, _ := err.(ErrorList)
				if len(list) != 3 {
					t.Fatalf("the profile with every example setting: want 3 errors, got:\n%v", err)
				}
				for _, e := range list {
					if !strings.HasSuffix(e.Key, ".path") || !strings.Contains(e.Msg, "not both") {
						t.Fatalf("unexpected error: %v", e)
					}
				}
			}
		})
	}
	if _, err := Commented(Template{Role: "gateway"}); err == nil {
		t.Fatal("unknown role accepted")
	}
}
