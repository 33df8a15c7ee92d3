package agenterr

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is how much of a bad value an error message repeats.
const MaxQuoted = 64

// Quote is %q of a value for an error message, cut to MaxQuoted bytes (on a
// character boundary) with its full length appended, so that a 100 000-byte
// argument is named but never echoed whole on stdout and stderr.
func Quote(v string) string {
	if len(v) <= MaxQuoted {
		return strconv.Quote(v)
	}
	cut := MaxQuoted
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d bytes)", v[:cut], len(v))
}
