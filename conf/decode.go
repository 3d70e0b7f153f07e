package conf

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"
)

// The toml package stops decoding at the first wrong type, but an operator
// should see every mistake at once. So the document is first parsed into
// generic values and then copied into the Profile here, field by field, by
// reflection over the `toml` tags: each unknown key and each wrong type
// becomes one Error and decoding goes on.

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[Duration]()
	anyMapType   = reflect.TypeFor[map[string]any]()
)

// defaulter is implemented by array entries that have defaults of their own.
type defaulter interface{ setDefaults() }

type decoder struct {
	file  string
	lines map[string]int
	errs  ErrorList
}

// line finds the line of path, or of its nearest parent in the file.
func (d *decoder) line(path string) int { return lineOf(d.lines, path) }

func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (p *Profile) lineOrParent(key string) int { return lineOf(p.lines, key) }

func (d *decoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.line(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// fields maps the toml names of a struct type to field indexes.
func fields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("toml")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = i
		names = append(names, name)
	}
	return m, names
}

func (d *decoder) decodeStruct(path string, m map[string]any, rv reflect.Value) {
	idx, names := fields(rv.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kp := joinKey(path, k)
		i, ok := idx[k]
		if !ok {
			msg := "unknown key"
			if s := suggest(k, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if s, ok := synonyms[joinKey(path, strings.ToLower(k))]; ok {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.errorf(kp, "%s", msg)
			continue
		}
		d.decodeValue(kp, m[k], rv.Field(i))
	}
}

func (d *decoder) wrongType(path, want string, v any) {
	d.errorf(path, "wrong type: want %s, got %s", want, tomlType(v))
}

func (d *decoder) decodeValue(path string, v any, rv reflect.Value) {
	t := rv.Type()
	switch {
	case t == sizeType:
		switch x := v.(type) {
		case int64:
			if x < 0 {
				d.errorf(path, "size must not be negative")
				return
			}
			rv.SetInt(x)
		case string:
			s, err := ParseSize(x)
			if err != nil {
				d.errorf(path, "%v", err)
				return
			}
			rv.SetInt(int64(s))
		default:
			d.wrongType(path, `a size such as "10GiB" or a number of bytes`, v)
		}
		return
	case t == durationType:
		x, ok := v.(string)
		if !ok {
			d.wrongType(path, `a duration string such as "30s"`, v)
			return
		}
		dur, err := parseDuration(x)
		if err != nil {
			d.errorf(path, "%v", err)
			return
		}
		rv.SetInt(int64(dur))
		return
	case t == anyMapType:
		x, ok := v.(map[string]any)
		if !ok {
			d.wrongType(path, "a table", v)
			return
		}
		rv.Set(reflect.ValueOf(x))
		return
	}
	switch t.Kind() {
	case reflect.String:
		x, ok := v.(string)
		if !ok {
			d.wrongType(path, "a string", v)
			return
		}
		rv.SetString(x)
	case reflect.Bool:
		x, ok := v.(bool)
		if !ok {
			d.wrongType(path, "true or false", v)
			return
		}
		rv.SetBool(x)
	case reflect.Int:
		x, ok := v.(int64)
		if !ok {
			d.wrongType(path, "an integer", v)
			return
		}
		if x < math.MinInt32 || x > math.MaxInt32 {
			d.errorf(path, "%d is out of range", x)
			return
		}
		rv.SetInt(x)
	case reflect.Struct:
		x, ok := v.(map[string]any)
		if !ok {
			d.wrongType(path, "a table", v)
			return
		}
		d.decodeStruct(path, x, rv)
	case reflect.Slice:
		d.decodeSlice(path, v, rv)
	default:
		// Only reachable if the schema grows a field of a new kind.
		d.errorf(path, "internal: no decoder for %s", t)
	}
}

func (d *decoder) decodeSlice(path string, v any, rv reflect.Value) {
	et := rv.Type().Elem()
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	case string:
		if et.Kind() == reflect.String {
			// A single address where a list is expected: a list of one.
			items = []any{x}
			break
		}
		d.wrongType(path, "an array", v)
		return
	default:
		_, isTable := v.(map[string]any)
		switch {
		case et.Kind() == reflect.Struct && isTable:
			// [webdav] where [[webdav]] was meant: say how to write it.
			d.errorf(path, "wrong type: want an array of tables, [[%s]] (two brackets), got a table, [%s]", path, path)
		case et.Kind() == reflect.Struct:
			d.wrongType(path, "an array of tables", v)
		default:
			d.wrongType(path, "an array", v)
		}
		return
	}
	out := reflect.MakeSlice(rv.Type(), len(items), len(items))
	for i, item := range items {
		ev := out.Index(i)
		if def, ok := ev.Addr().Interface().(defaulter); ok {
			def.setDefaults()
		}
		ip := indexKey(path, i)
		if _, isStr := v.(string); isStr {
			ip = path
		}
		d.decodeValue(ip, item, ev)
	}
	rv.Set(out)
}

// tomlType names the TOML type of a decoded value, with the value when short.
func tomlType(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) <= 40 {
			return fmt.Sprintf("string %q", x)
		}
		return "string"
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case time.Time:
		return "datetime"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// synonyms are keys operators write from habit — Tahoe-LAFS's tahoe.cfg
// names, or a natural word for a setting — with what tarn calls it. They
// are suggested when no key of the table is a likely typo.
var synonyms = map[string]string{
	"client.shares.needed":    `"k"`,
	"client.shares.happy":     `"h"`,
	"client.shares.happiness": `"h"`,
	"client.shares.total":     `"n"`,
	"client.needed":           `[client.shares] k`,
	"client.happy":            `[client.shares] h`,
	"client.happiness":        `[client.shares] h`,
	"client.happines":         `[client.shares] h`,
	"client.total":            `[client.shares] n`,
	"client.k":                `[client.shares] k`,
	"client.h":                `[client.shares] h`,
	"client.n":                `[client.shares] n`,
	"client.timeout":          `"server_timeout"`,
	"node.nickname":           `"name"`,
	"node.loglevel":           `"log_level"`,
	"node.log":                `"log_level" or "log_format"`,
	"node.web_port":           `"api_listen"`,
	"node.api_port":           `"api_listen"`,
	"node.port":               `"api_listen", or listen under [storage] or [introducer]`,
	"node.listen":             `"api_listen", or listen under [storage] or [introducer]`,
	"grid.introducer":         `"introducers" (a list of node URLs)`,
	"grid.introducer_furl":    `"introducers" (a list of node URLs)`,
	"grid.introducer_url":     `"introducers" (a list of node URLs)`,
	"grid.secret":             `"secret_file" (the path of the grid secret)`,
	"grid.server":             `[[grid.servers]]`,
	"storage.reserved":        `"reserved_space"`,
	"storage.reserve":         `"reserved_space"`,
	"storage.path":            `[plugins.storage.config] path`,
	"storage.dir":             `[plugins.storage.config] path`,
	"storage.directory":       `[plugins.storage.config] path`,
	"storage.lease":           `"lease_duration"`,
	"storage.port":            `"listen"`,
	"introducer.port":         `"listen"`,
	"introducer.furl":         `[grid] introducers on the other nodes; here: "listen" and "announce"`,
	"account":                 `[[accounts]]`,
	"sftpd":                   `[[sftp]]`,
	"plugin":                  `[plugins.codec], [plugins.storage] or [plugins.transport]`,
}

// suggest returns the name closest to k when it is a likely typo.
func suggest(k string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		// A distance as long as the key itself ("x" for "k") is no typo.
		if dd := editDistance(strings.ToLower(k), n); dd < bestD && dd < len(k) {
			best, bestD = n, dd
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
