package sftp

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestSCPMessageOneLine: an scp warning or fatal message naming a path
// with a newline, a carriage return or bytes that are not UTF-8 goes out
// as one line of UTF-8 (scp prints the line as it comes; a newline in it
// would also end the message early).
func TestSCPMessageOneLine(t *testing.T) {
	for _, send := range []func(*scp, string){
		func(sc *scp, m string) { sc.warn(m) },
		func(sc *scp, m string) { sc.fatal(m) },
	} {
		var out bytes.Buffer
		sc := &scp{w: &out}
		send(sc, "open /a\nb\rc\xff: no such file")
		line := out.String()
		if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 || strings.ContainsRune(line, '\r') {
			t.Fatalf("message %q is not one line", line)
		}
		if !utf8.ValidString(line) {
			t.Fatalf("message %q is not UTF-8", line)
		}
		if !strings.Contains(line, `/a\nb\rc\xff`) {
			t.Fatalf("message %q does not show the path escaped", line)
		}
	}
}
