// Package tagvalue fits values into an EC2 tag value (contract.MaxTagValueLen
// characters). Two rules, each caller picking its own: Truncate marks the cut
// where a reader must not mistake the value for the whole (a note, a mount
// list), Cut does not where the value is only a label.
package tagvalue

import (
	"unicode/utf8"

	"github.com/quiesce/quiesce/contract"
)

// Mark ends a value Truncate cut.
const Mark = "...(truncated)"

// Fits says whether v fits a tag value as it is.
func Fits(v string) bool { return utf8.RuneCountInString(v) <= contract.MaxTagValueLen }

// Truncate cuts v to the limit (in characters, never mid-rune), marking
// the cut.
func Truncate(v string) string {
	if Fits(v) {
		return v
	}
	return string([]rune(v)[:contract.MaxTagValueLen-len(Mark)]) + Mark
}

// Cut cuts v to the limit (in characters, never mid-rune), unmarked.
func Cut(v string) string {
	if Fits(v) {
		return v
	}
	return string([]rune(v)[:contract.MaxTagValueLen])
}
