package agenterr

import (
	"strings"
	"testing"
)

func TestQuoteValue(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", `"abc"`},
		{"", `""`},
		{"a\tb", `"a\tb"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 65), `"` + strings.Repeat("x", 64) + `"…(65 bytes)`},
		// Cut on a character boundary, never inside a UTF-8 sequence.
		{strings.Repeat("x", 63) + "ééé", `"` + strings.Repeat("x", 63) + `"…(69 bytes)`},
	}
	for _, c := range cases {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%.80q) = %s, want %s", c.in, got, c.want)
		}
	}
}
