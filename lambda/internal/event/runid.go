package event

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewRunID returns an ID that sorts by time and matches contract.RunIDPattern
// (the SSM document's runId pattern): 20261125T194500Z-a1b2c3.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
