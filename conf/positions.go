package conf

import (
	"sort"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6.0 keeps the position of each key private (and keeps
// one position per dotted key, so the entries of an array of tables share
// it). To point every error at its line, keyLines walks the document itself
// — tables, arrays of tables, dotted keys, inline tables, arrays, strings and
// comments — and records the line where each key path starts. It runs only
// on documents the toml parser has accepted; on anything else it stops
// early rather than guess, and the errors fall back to the nearest known
// parent's line.

// joinKey appends one key segment to a path, quoting it as TOML would.
func joinKey(path, key string) string {
	// Quote exactly as the toml package prints keys (toml.Key.String), so
	// paths built here match the paths the decoder reports.
	q := toml.Key{key}.String()
	if path == "" {
		return q
	}
	return path + "." + q
}

// indexKey appends an array index to a path: "webdav" -> "webdav[1]".
func indexKey(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func isBare(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

type scanner struct {
	src    string
	i      int
	nl     []int          // offsets of '\n'
	lines  map[string]int // key path -> line
	arrays map[string]int // array-of-tables path -> entries so far
	bad    bool           // stop: the scanner met something it does not understand
}

// keyLines maps every key path in a (valid) TOML document to its line.
func keyLines(src string) map[string]int {
	s := &scanner{src: strings.TrimPrefix(src, "\ufeff"), lines: map[string]int{}, arrays: map[string]int{}}
	for i := 0; i < len(s.src); i++ {
		if s.src[i] == '\n' {
			s.nl = append(s.nl, i)
		}
	}
	s.document()
	return s.lines
}

func (s *scanner) lineAt(off int) int { return 1 + sort.SearchInts(s.nl, off) }

func (s *scanner) eof() bool { return s.bad || s.i >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *scanner) record(path string, off int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = s.lineAt(off)
	}
}

// skip passes spaces and tabs, and with nl also newlines and comments.
func (s *scanner) skip(nl bool) {
	for !s.eof() {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t':
			s.i++
		case nl && (c == '\n' || c == '\r'):
			s.i++
		case nl && c == '#':
			for !s.eof() && s.src[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

func (s *scanner) document() {
	table := ""
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			array := strings.HasPrefix(s.src[s.i:], "[[")
			if array {
				s.i += 2
			} else {
				s.i++
			}
			keys := s.keys()
			if s.bad {
				return
			}
			path := ""
			for n, k := range keys {
				path = joinKey(path, k)
				if n < len(keys)-1 {
					if c := s.arrays[path]; c > 0 {
						path = indexKey(path, c-1)
					}
					s.record(path, start)
				}
			}
			s.record(path, start)
			if array {
				c := s.arrays[path]
				s.arrays[path] = c + 1
				path = indexKey(path, c)
				s.record(path, start)
				s.expect("]]")
			} else {
				s.expect("]")
			}
			table = path
			continue
		}
		s.keyValue(table)
	}
}

func (s *scanner) expect(tok string) {
	s.skip(false)
	if !strings.HasPrefix(s.src[min(s.i, len(s.src)):], tok) {
		s.bad = true
		return
	}
	s.i += len(tok)
}

// keyValue reads "a.b.c = value" inside table and records its lines.
func (s *scanner) keyValue(table string) {
	start := s.i
	keys := s.keys()
	if s.bad || len(keys) == 0 {
		s.bad = true
		return
	}
	path := table
	for _, k := range keys {
		path = joinKey(path, k)
		s.record(path, start)
	}
	s.expect("=")
	if s.bad {
		return
	}
	s.skip(false)
	s.value(path)
}

// keys reads a dotted key: bare or quoted segments separated by dots.
func (s *scanner) keys() []string {
	var keys []string
	for {
		s.skip(false)
		if s.eof() {
			s.bad = true
			return nil
		}
		switch c := s.peek(); {
		case c == '"':
			raw := s.basicString()
			keys = append(keys, unescapeBasic(strings.TrimSuffix(strings.TrimPrefix(raw, `"`), `"`)))
		case c == '\'':
			keys = append(keys, strings.Trim(s.literalString(), "'"))
		default:
			j := s.i
			for j < len(s.src) && isBare(s.src[j:j+1]) {
				j++
			}
			if j == s.i {
				s.bad = true
				return nil
			}
			keys = append(keys, s.src[s.i:j])
			s.i = j
		}
		s.skip(false)
		if s.peek() != '.' {
			return keys
		}
		s.i++
	}
}

func (s *scanner) value(path string) {
	if s.eof() {
		s.bad = true
		return
	}
	switch s.peek() {
	case '"':
		s.basicString()
	case '\'':
		s.literalString()
	case '[':
		s.i++
		for n := 0; ; n++ {
			s.skip(true)
			if s.eof() {
				s.bad = true
				return
			}
			if s.peek() == ']' {
				s.i++
				return
			}
			s.record(indexKey(path, n), s.i)
			s.value(indexKey(path, n))
			s.skip(true)
			if s.peek() == ',' {
				s.i++
			}
		}
	case '{':
		s.i++
		for {
			s.skip(true)
			if s.eof() {
				s.bad = true
				return
			}
			if s.peek() == '}' {
				s.i++
				return
			}
			at := s.i
			s.keyValue(path)
			if s.bad || s.i == at {
				s.bad = true
				return
			}
			s.skip(true)
			if s.peek() == ',' {
				s.i++
			}
		}
	default:
		// Numbers, booleans, dates: none contains these delimiters.
		j := s.i
		for j < len(s.src) && !strings.ContainsRune(",]}#\n", rune(s.src[j])) {
			j++
		}
		if j == s.i {
			s.bad = true
			return
		}
		s.i = j
	}
}

// basicString passes a "..." or """...""" string and returns its text.
func (s *scanner) basicString() string {
	start := s.i
	if strings.HasPrefix(s.src[s.i:], `"""`) {
		s.i += 3
		for !s.eof() {
			switch {
			case s.src[s.i] == '\\':
				s.i += 2
			case strings.HasPrefix(s.src[s.i:], `"""`):
				s.i += 3
				for n := 0; n < 2 && s.peek() == '"'; n++ {
					s.i++
				}
				return s.src[start:s.i]
			default:
				s.i++
			}
		}
		s.bad = true
		return ""
	}
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return s.src[start:s.i]
		case '\n':
			s.bad = true
			return ""
		default:
			s.i++
		}
	}
	s.bad = true
	return ""
}

// literalString passes a literal string (single- or multi-line) and returns its text.
func (s *scanner) literalString() string {
	start := s.i
	if strings.HasPrefix(s.src[s.i:], "'''") {
		end := strings.Index(s.src[s.i+3:], "'''")
		if end < 0 {
			s.bad = true
			return ""
		}
		s.i += 3 + end + 3
		for n := 0; n < 2 && s.peek() == '\''; n++ {
			s.i++
		}
		return s.src[start:s.i]
	}
	end := strings.IndexAny(s.src[s.i+1:], "'\n")
	if end < 0 || s.src[s.i+1+end] != '\'' {
		s.bad = true
		return ""
	}
	s.i += 1 + end + 1
	return s.src[start:s.i]
}

// unescapeBasic decodes the escapes of a TOML basic string: the TOML 1.0
// set plus \e and \xHH from TOML 1.1, which the toml package accepts. An
// escape it does not know is kept as written (the parser has refused such a
// document already).
func unescapeBasic(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	simple := map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\', 'e': 0x1b}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if c, ok := simple[s[i]]; ok {
			b.WriteByte(c)
			continue
		}
		width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i]]
		if width > 0 && i+width < len(s) {
			if r, err := strconv.ParseUint(s[i+1:i+1+width], 16, 32); err == nil && utf8.ValidRune(rune(r)) {
				b.WriteRune(rune(r))
				i += width
				continue
			}
		}
		b.WriteByte('\\')
		b.WriteByte(s[i])
	}
	return b.String()
}
