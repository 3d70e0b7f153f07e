package webdav

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/webdav"
)

// ifList is one parenthesized list of an If header: all its conditions
// must hold; a header holds when any list does (RFC 4918 section 10.4).
type ifList struct {
	resource   string // the Resource-Tag URI, "" for the request's
	conditions []webdav.Condition
}

// errIfHeader: an If header that does not parse.
var errIfHeader = errors.New("malformed If header")

// maxIfHeader bounds the header parsed.
const maxIfHeader = 16 << 10

// parseIf reads an If header:
//
//	If = 1*No-tag-list | 1*Tagged-list
//	Tagged-list = "<" URI ">" 1*List
//	List = "(" 1*( ["Not"] ( "<" state-token ">" | "[" entity-tag "]" ) ) ")"
func parseIf(s string) ([]ifList, error) {
	if len(s) > maxIfHeader {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errIfHeader, len(s), maxIfHeader)
	}
	var out []ifList
	tagged := -1 // unknown until the first element
	resource := ""
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		switch s[0] {
		case '<':
			if tagged == 0 {
				return nil, fmt.Errorf("%w: resource tag after an untagged list", errIfHeader)
			}
			tagged = 1
			end := strings.IndexByte(s, '>')
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated resource tag", errIfHeader)
			}
			resource = s[1:end]
			s = s[end+1:]
			if !strings.HasPrefix(strings.TrimLeft(s, " \t"), "(") {
				return nil, fmt.Errorf("%w: resource tag without a list", errIfHeader)
			}
		case '(':
			if tagged == -1 {
				tagged = 0
			}
			l, rest, err := parseIfList(s[1:])
			if err != nil {
				return nil, err
			}
			l.resource = resource
			out = append(out, l)
			s = rest
		default:
			return nil, fmt.Errorf("%w: unexpected %q", errIfHeader, s[:1])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no list", errIfHeader)
	}
	return out, nil
}

// parseIfList reads conditions up to ")".
func parseIfList(s string) (ifList, string, error) {
	var l ifList
	not := false
	for {
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "":
			return l, "", fmt.Errorf("%w: unterminated list", errIfHeader)
		case s[0] == ')':
			if not {
				return l, "", fmt.Errorf("%w: Not without a condition", errIfHeader)
			}
			if len(l.conditions) == 0 {
				return l, "", fmt.Errorf("%w: empty list", errIfHeader)
			}
			return l, s[1:], nil
		case len(s) >= 3 && strings.EqualFold(s[:3], "not"):
			if not {
				return l, "", fmt.Errorf("%w: Not Not", errIfHeader)
			}
			not = true
			s = s[3:]
		case s[0] == '<':
			end := strings.IndexByte(s, '>')
			if end < 0 {
				return l, "", fmt.Errorf("%w: unterminated state token", errIfHeader)
			}
			tok := s[1:end]
			if tok == "" || strings.ContainsAny(tok, " \t") {
				return l, "", fmt.Errorf("%w: bad state token", errIfHeader)
			}
			l.conditions = append(l.conditions, webdav.Condition{Not: not, Token: tok})
			not = false
			s = s[end+1:]
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return l, "", fmt.Errorf("%w: unterminated entity tag", errIfHeader)
			}
			tag := strings.TrimSpace(s[1:end])
			if tag == "" {
				return l, "", fmt.Errorf("%w: empty entity tag", errIfHeader)
			}
			l.conditions = append(l.conditions, webdav.Condition{Not: not, ETag: tag})
			not = false
			s = s[end+1:]
		default:
			return l, "", fmt.Errorf("%w: unexpected %q in a list", errIfHeader, s[:1])
		}
	}
}

// etagEqual compares entity tags weakly (W/ ignored), as If conditions do
// for a resource whose tags are all strong.
func etagEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}
