package restore

import (
	"bufio"
	"io"
	"regexp"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// Error-log lines that say recovery ran (InnoDB redo apply or rollback,
// binlog-driven XA recovery, Aria/MyISAM table recovery), from MariaDB 10.x
// and MySQL 5.7/8.x.
var recoveryRan = regexp.MustCompile(`(?i)(starting crash recovery|to recover: \d+ pages|starting (final )?batch to recover|` +
	`apply batch completed|database was not shut ?down normally|rolled back recovered transaction|` +
	`rollback of (non-prepared )?(trx|transactions)|recovering after a crash using|crash table recovery|` +
	`doing recovery: scanned up to|starting (in background the )?rollback|transaction .* was in the xa prepared state)`)

// Lines worth quoting besides those: recovery's own summary and corruption.
var recoveryNote = regexp.MustCompile(`(?i)(recover|corrupt|crash|log sequence number|apply)`)

// maxRecoveryLines bounds the quoted lines.
const maxRecoveryLines = 40

// ParseRecovery reads a server error log and returns what it said about
// crash recovery: whether recovery ran, and its lines verbatim (the first
// maxRecoveryLines).
func ParseRecovery(errorLog io.Reader) contract.Recovery {
	var rec contract.Recovery
	sc := bufio.NewScanner(errorLog)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		ran := recoveryRan.MatchString(line)
		rec.Ran = rec.Ran || ran
		if (ran || recoveryNote.MatchString(line)) && len(rec.Messages) < maxRecoveryLines {
			rec.Messages = append(rec.Messages, line)
		}
	}
	return rec
}

// ErrorLines returns the error lines of an error log (the last n): those
// tagged [ERROR], and untagged ones (what the server prints before its log is
// set up, e.g. "mariadbd: Can't change dir to ...").
func ErrorLines(errorLog io.Reader, n int) []string {
	var out []string
	sc := bufio.NewScanner(errorLog)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		tagged := strings.Contains(line, "[Note]") || strings.Contains(line, "[Warning]") || strings.Contains(line, "[System]")
		if line != "" && (strings.Contains(line, "[ERROR]") || !tagged) {
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
