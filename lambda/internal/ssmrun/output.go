package ssmrun

import (
	"encoding/json"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// Report decodes the JSON report hostagent printed on stdout; nil when
// stdout holds none (cut by SSM's 24,000-character output limit, say), or
// when complete says the decoded value lacks what every report carries.
func Report[T any](stdout string, complete func(*T) bool) *T {
	var rep T
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &rep); err != nil || !complete(&rep) {
		return nil
	}
	return &rep
}

// ErrorOf says why hostagent failed: its ErrorReport's message on stdout
// (the whole output, or its first line), else stderr's last line, else
// "no output".
func ErrorOf(stdout, stderr string) string {
	out := strings.TrimSpace(stdout)
	first, _, _ := strings.Cut(out, "\n")
	for _, s := range []string{out, first} {
		var e contract.ErrorReport
		if json.Unmarshal([]byte(s), &e) == nil && e.Error != "" {
			return e.Error
		}
	}
	return LastLine(stderr)
}

// LastLine is the last line of s, or "no output" when s is blank.
func LastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	if s == "" {
		return "no output"
	}
	return s
}

// Truncate cuts s to at most n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
