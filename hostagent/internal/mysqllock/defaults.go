package mysqllock

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// clientOptions are the connection settings read from a defaults file.
type clientOptions struct {
	Socket   string
	Host     string
	Port     int
	User     string
	Password secret
}

// maxDefaultsFileSize guards against pointing --mysql-defaults-file at
// something that is not an option file (a device, a log).
const maxDefaultsFileSize = 1 << 20

// readDefaultsFile parses the [client] and [quiesce] groups of a MySQL option
// file (later groups and later lines win, as with the mysql client). Keys
// socket, host, port, user, password are used; others are ignored. `!include`
// and `!includedir` are refused rather than silently ignored, so credentials
// never come from somewhere the operator did not expect. Values are decoded
// byte for byte as MariaDB's own reader does (see optionValue).
func readDefaultsFile(path string) (clientOptions, error) {
	return readDefaultsGroups(path, clientGroups)
}

// clientGroups are the groups hostagent's own connection reads.
var clientGroups = []string{"client", "quiesce"}

// readDefaultsGroups is readDefaultsFile for the named groups.
func readDefaultsGroups(path string, groups []string) (clientOptions, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return clientOptions{}, err
	}
	if !fi.Mode().IsRegular() {
		return clientOptions{}, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		// The mariadb client ignores such a file (with a warning): anyone
		// could have put credentials or a socket path in it.
		return clientOptions{}, fmt.Errorf("%s is world-writable; the MySQL client ignores such a file (chmod o-w it)", path)
	}
	if fi.Size() > maxDefaultsFileSize {
		return clientOptions{}, fmt.Errorf("%s is larger than %d bytes; not an option file", path, maxDefaultsFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return clientOptions{}, err
	}
	return parseDefaultsGroups(path, b, groups)
}

// maxOptionLine is the longest line MariaDB's reader takes whole (it reads
// with fgets into a 4096-byte buffer, size-1; a longer line is silently split
// into two). Longer lines are refused instead.
const maxOptionLine = 4096 - 2

func parseDefaults(name string, b []byte) (clientOptions, error) {
	return parseDefaultsGroups(name, b, clientGroups)
}

func parseDefaultsGroups(name string, b []byte, groups []string) (clientOptions, error) {
	var co clientOptions
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), maxDefaultsFileSize)
	group := ""
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		if lineNo == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s line %d: %s", name, lineNo, fmt.Sprintf(format, args...))
		}
		if len(raw)+1 > maxOptionLine {
			return co, bad("longer than %d bytes (the MySQL option-file line limit)", maxOptionLine-1)
		}
		line := trimOptionSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '!' {
			directive, _, _ := strings.Cut(line, " ")
			return co, bad("%s is not supported; put the [client] options in this file", directive)
		}
		if line[0] == '[' {
			g, err := groupName(line)
			if err != nil {
				return co, bad("%v", err)
			}
			group = g
			continue
		}
		if group == "" {
			return co, bad("option %q before any [group]", firstWord(line))
		}
		key, rawValue, hasValue := splitOption(line)
		if key == "" || strings.ContainsAny(key, " \t\"'") {
			return co, bad("malformed option %q", firstWord(line))
		}
		if !slices.Contains(groups, group) {
			continue
		}
		if !hasValue && normalKey(key) == "password" {
			// The mysql client would prompt for it; nobody can answer here.
			return co, bad("password without a value (the mysql client would prompt for it); give password=...")
		}
		value := ""
		if hasValue {
			v, err := optionValue(rawValue)
			if err != nil {
				return co, bad("option %s: %v", key, err)
			}
			value = v
		}
		if err := co.set(key, value); err != nil {
			return co, bad("%v", err)
		}
	}
	if err := sc.Err(); err != nil {
		return co, fmt.Errorf("%s: %w", name, err)
	}
	return co, nil
}

// set applies one option of the [client]/[quiesce] groups; unknown keys are
// ignored (they belong to other tools reading the same groups).
func (co *clientOptions) set(key, value string) error {
	switch normalKey(key) {
	case "socket":
		co.Socket = value
	case "host":
		co.Host = value
	case "user":
		co.User = value
	case "password":
		co.Password = secret(value)
	case "port":
		p, err := strconv.Atoi(value)
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("port %q is not a TCP port", value)
		}
		co.Port = p
	}
	return nil
}

// normalKey folds case, "_" to "-" and the "loose-" prefix the client accepts.
func normalKey(key string) string {
	return strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(key, "_", "-")), "loose-")
}

// groupName reads a "[group]" header line. Like the server's reader, only
// whitespace before the "]" is dropped ("[ client]" is the group " client",
// which no client reads) and names compare case-insensitively. Text after the
// "]" is refused rather than ignored.
func groupName(line string) (string, error) {
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return "", fmt.Errorf("unterminated group header %q", firstWord(line))
	}
	if rest := trimOptionSpace(line[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
		return "", fmt.Errorf("unexpected text after group header: %q", firstWord(rest))
	}
	g := strings.ToLower(trimRightOptionSpace(line[1:end]))
	if trimOptionSpace(g) == "" {
		return "", fmt.Errorf("empty group name")
	}
	return g, nil
}

// splitOption cuts a "key = value # comment" line as the server's reader
// does: the comment is removed from the whole line first (so a quote in the
// key counts), then the line splits at the first "=".
func splitOption(line string) (key, value string, hasValue bool) {
	line = stripComment(line)
	key, value, hasValue = strings.Cut(line, "=")
	return trimOptionSpace(key), value, hasValue
}

// optionValue decodes a value exactly as MariaDB's option-file reader
// (mysys/my_default.c) does, so the password that logs in with the mariadb
// client logs in here: surrounding whitespace is dropped; when the value
// starts and ends with the same quote character (and is longer than one
// character) that pair is stripped; then \n \t \r \b \s \" \' \\ are
// decoded anywhere in the value (inside or outside quotes), other escapes and
// a final lone backslash are kept as written. The `#` comment was cut before
// (see stripComment). Where the reader would keep quote characters as part
// of the value (a value that starts with a quote and does not end with it:
// an unterminated quote, text after the closing quote) this is an error
// instead: almost certainly a typo in a password. Errors never include the
// value.
func optionValue(raw string) (string, error) {
	s := trimOptionSpace(raw)
	if s == "" {
		return "", nil
	}
	if q := s[0]; q == '\'' || q == '"' {
		switch {
		case len(s) > 1 && s[len(s)-1] == q:
			s = s[1 : len(s)-1]
		case closingQuote(s) < 0:
			return "", fmt.Errorf("unterminated %c quote", q)
		default:
			return "", fmt.Errorf("unexpected text after the closing quote")
		}
	}
	return unescape(s), nil
}

// stripComment cuts a `#` comment that is outside quotes. As in the server's
// reader a quote opens a string wherever it appears (also mid-word, as in
// it's), and a backslash protects a quote only inside a string.
func stripComment(s string) string {
	var quote byte
	escape := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == '\'' || c == '"') && !escape {
			switch quote {
			case 0:
				quote = c
			case c:
				quote = 0
			}
		}
		if quote == 0 && c == '#' {
			return s[:i]
		}
		escape = quote != 0 && c == '\\' && !escape
	}
	return s
}

// closingQuote is the index of the quote closing s[0], honouring backslashes.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == s[0] {
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 's':
			b.WriteByte(' ')
		case '"', '\'', '\\':
			b.WriteByte(s[i])
		default:
			// Unknown escapes keep both characters, like the server's reader.
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isOptionSpaceByte is the server reader's whitespace: my_isspace in latin1,
// which is space, \t \n \v \f \r and 0xA0 (so it also trims the last byte
// of a UTF-8 character ending in 0xA0, such as "à"; this mirrors the client
// byte for byte). It works on bytes, not runes.
func isOptionSpaceByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
		return true
	}
	return false
}

// trimOptionSpace drops the reader's whitespace bytes at both ends.
func trimOptionSpace(s string) string {
	i := 0
	for i < len(s) && isOptionSpaceByte(s[i]) {
		i++
	}
	return trimRightOptionSpace(s[i:])
}

func trimRightOptionSpace(s string) string {
	j := len(s)
	for j > 0 && isOptionSpaceByte(s[j-1]) {
		j--
	}
	return s[:j]
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, "=")
	w = strings.TrimSpace(w)
	if len(w) > 40 {
		w = w[:40] + "…"
	}
	return w
}
