package restore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrOptionFile: the operator's option file cannot be used.
var ErrOptionFile = errors.New("bad option file")

// serverGroups are the option-file groups a mariadbd/mysqld reads.
var serverGroups = map[string]bool{"mysqld": true, "mariadbd": true, "server": true, "mariadb": true}

// ParseOptionFile turns the server groups of a my.cnf-style file
// ([mysqld], [mariadbd], [server], [mariadb]) into command-line options,
// in file order. Servers start with --no-defaults, so the file is not read
// by them; !include directives are refused rather than followed.
func ParseOptionFile(r io.Reader) ([]string, error) {
	var out []string
	inServer := false
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '!':
			return nil, fmt.Errorf("line %d: %q: include directives are not followed: %w", n, line, ErrOptionFile)
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: %q: unterminated group: %w", n, line, ErrOptionFile)
			}
			inServer = serverGroups[strings.ToLower(strings.TrimSpace(line[1:len(line)-1]))]
			continue
		}
		if !inServer {
			continue
		}
		name, value, hasValue := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d: %q: not an option: %w", n, line, ErrOptionFile)
		}
		opt := "--" + strings.TrimPrefix(name, "--")
		if hasValue {
			opt += "=" + unquote(strings.TrimSpace(value))
		}
		out = append(out, opt)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOptionFile, err)
	}
	return out, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}
