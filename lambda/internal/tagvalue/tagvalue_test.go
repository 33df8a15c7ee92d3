package tagvalue

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateAndCut(t *testing.T) {
	fits := strings.Repeat("é", 256)
	long := strings.Repeat("é", 300)
	tests := []struct {
		name, in, truncated, cut string
	}{
		{"short", "abc", "abc", "abc"},
		{"exactly the limit", fits, fits, fits},
		{"over the limit", long, strings.Repeat("é", 256-len(Mark)) + Mark, fits},
	}
	for _, tt := range tests {
		if got := Truncate(tt.in); got != tt.truncated {
			t.Errorf("%s: Truncate = %q", tt.name, got)
		}
		if got := Cut(tt.in); got != tt.cut {
			t.Errorf("%s: Cut = %q", tt.name, got)
		}
		for _, got := range []string{Truncate(tt.in), Cut(tt.in)} {
			if n := utf8.RuneCountInString(got); n > 256 || !utf8.ValidString(got) {
				t.Errorf("%s: %d characters, valid UTF-8 %v", tt.name, n, utf8.ValidString(got))
			}
		}
	}
}
