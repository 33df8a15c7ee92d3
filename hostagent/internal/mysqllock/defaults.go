package mysqllock

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
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
// never come from somewhere the operator did not expect.
func readDefaultsFile(path string) (clientOptions, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return clientOptions{}, err
	}
	if !fi.Mode().IsRegular() {
		return clientOptions{}, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxDefaultsFileSize {
		return clientOptions{}, fmt.Errorf("%s is larger than %d bytes; not an option file", path, maxDefaultsFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return clientOptions{}, err
	}
	return parseDefaults(path, b)
}

func parseDefaults(name string, b []byte) (clientOptions, error) {
	var co clientOptions
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), maxDefaultsFileSize)
	group := ""
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s line %d: %s", name, lineNo, fmt.Sprintf(format, args...))
		}
		if line[0] == '!' {
			directive, _, _ := strings.Cut(line, " ")
			return co, bad("%s is not supported; put the [client] options in this file", directive)
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return co, bad("unterminated group header %q", line)
			}
			if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
				return co, bad("unexpected text after group header: %q", rest)
			}
			group = strings.ToLower(strings.TrimSpace(line[1:end]))
			if group == "" {
				return co, bad("empty group name")
			}
			continue
		}
		if group == "" {
			return co, bad("option %q before any [group]", firstWord(line))
		}
		key, rawValue, hasValue := strings.Cut(line, "=")
		key = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(key), "_", "-"))
		if key == "" || strings.ContainsAny(key, " \t\"'") {
			return co, bad("malformed option %q", firstWord(line))
		}
		if group != "client" && group != "quiesce" {
			continue
		}
		value := ""
		if hasValue {
			v, err := optionValue(rawValue)
			if err != nil {
				return co, bad("option %s: %v", key, err)
			}
			value = v
		}
		switch key {
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
				return co, bad("port %q is not a TCP port", value)
			}
			co.Port = p
		}
	}
	if err := sc.Err(); err != nil {
		return co, fmt.Errorf("%s: %w", name, err)
	}
	return co, nil
}

// optionValue decodes a value as the MySQL client's option-file reader
// (mysys my_default.c) does: a `#` outside quotes starts a comment, a
// backslash protects a quote inside quotes, surrounding whitespace is
// dropped, one pair of matching outer quotes is stripped, then the escapes
// \b \t \n \r \s \\ are decoded (others keep their backslash). Where the
// client would silently keep a stray quote as part of the value (an
// unterminated quote, text after the closing quote) this is an error instead,
// as it is almost certainly a typo in a password. Errors never include the
// value.
func optionValue(raw string) (string, error) {
	s := strings.TrimSpace(stripComment(raw))
	if s == "" {
		return "", nil
	}
	if q := s[0]; q == '\'' || q == '"' {
		closing := closingQuote(s)
		switch {
		case closing < 0:
			return "", fmt.Errorf("unterminated %c quote", q)
		case closing != len(s)-1:
			return "", fmt.Errorf("unexpected text after the closing quote")
		}
		s = s[1:closing]
	}
	return unescape(s), nil
}

// stripComment cuts a `#` comment that is outside quotes.
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
		case '\\':
			b.WriteByte('\\')
		default:
			// Unknown escapes keep both characters, like the server's reader.
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, "=")
	w = strings.TrimSpace(w)
	if len(w) > 40 {
		w = w[:40] + "…"
	}
	return w
}
