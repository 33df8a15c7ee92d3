// Package restore reads what MariaDB prints about a copy of its data: a
// binlog index, mariadb-binlog's event headers, GTID positions and the crash
// recovery lines of an error log. The demo harness compares replica GTID
// positions with it (ParseGTIDPos); the verify action's own checks on a
// restored set live in hostagent/internal/restore.
package restore

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// ParseIndex reads a binlog index file (one binlog file name per line) and
// returns the names as written.
func ParseIndex(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// An event header line: "#251125 19:47:41 server id 1  end_log_pos 97526 CRC32 …".
var endLogPos = regexp.MustCompile(`^#\d{6}\s+\d{1,2}:\d{2}:\d{2}\s+server id \d+\s+end_log_pos (\d+)\b`)

// LastEventEnd returns the largest end_log_pos printed by mariadb-binlog for
// a file: where its last complete event ends.
func LastEventEnd(mysqlbinlogOutput io.Reader) (uint64, int, error) {
	var last uint64
	events := 0
	sc := bufio.NewScanner(mysqlbinlogOutput)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		m := endLogPos.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return 0, events, fmt.Errorf("end_log_pos %q: %w", m[1], err)
		}
		events++
		if v > last {
			last = v
		}
	}
	return last, events, sc.Err()
}

// GTID is one MariaDB GTID domain-server-seq.
type GTID struct {
	Domain, Server uint32
	Seq            uint64
}

// ParseGTIDPos parses a MariaDB GTID position ("0-1-42,1-2-7"), one entry per domain.
func ParseGTIDPos(s string) (map[uint32]GTID, error) {
	out := map[uint32]GTID{}
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-seq", part)
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		sv, err2 := strconv.ParseUint(f[1], 10, 32)
		q, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("GTID %q: not numbers", part)
		}
		if _, dup := out[uint32(d)]; dup {
			return nil, fmt.Errorf("GTID position %q: domain %d twice", s, d)
		}
		out[uint32(d)] = GTID{uint32(d), uint32(sv), q}
	}
	return out, nil
}

// SameGTIDPos reports whether two GTID positions name the same transactions
// (order of domains does not matter).
func SameGTIDPos(a, b string) (bool, error) {
	pa, err := ParseGTIDPos(a)
	if err != nil {
		return false, err
	}
	pb, err := ParseGTIDPos(b)
	if err != nil {
		return false, err
	}
	if len(pa) != len(pb) {
		return false, nil
	}
	for d, g := range pa {
		if pb[d] != g {
			return false, nil
		}
	}
	return true, nil
}

// Recovery is what the restored server's error log says about its startup.
type Recovery struct {
	// RedoApplied: InnoDB replayed its redo log (it always does on an image
	// taken from a running server: the files were frozen, not shut down).
	RedoApplied bool
	// RolledBack counts transactions InnoDB rolled back (incomplete at the freeze).
	RolledBack int
	// Prepared: XA-prepared transactions found (a commit caught between
	// InnoDB prepare and the binlog write); resolved against the binlog.
	Prepared bool
	// BinlogRecovery: the server ran binlog crash recovery.
	BinlogRecovery bool
	// Notes are the relevant log lines; Errors are [ERROR] lines.
	Notes  []string
	Errors []string
}

// Summary is a short human description ("clean start", "redo replay only", …).
func (r Recovery) Summary() string {
	var parts []string
	if r.RedoApplied {
		parts = append(parts, "redo replay")
	}
	if r.BinlogRecovery {
		parts = append(parts, "binlog recovery")
	}
	if r.Prepared {
		parts = append(parts, "prepared trx resolved")
	}
	if r.RolledBack > 0 {
		parts = append(parts, fmt.Sprintf("%d trx rolled back", r.RolledBack))
	}
	if len(parts) == 0 {
		return "clean start"
	}
	return strings.Join(parts, ", ")
}

var rolledBackTrx = regexp.MustCompile(`(\d+) transaction\(s\) which must be rolled back`)

// ParseErrorLog extracts the crash-recovery facts from a mariadbd error log.
func ParseErrorLog(r io.Reader) Recovery {
	var rec Recovery
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		note := false
		switch {
		case strings.Contains(line, "Starting crash recovery from checkpoint"),
			strings.Contains(line, "Starting final batch to recover"),
			strings.Contains(line, "InnoDB: Starting a batch to recover"):
			rec.RedoApplied, note = true, true
		case strings.Contains(line, "Recovering after a crash using"):
			rec.BinlogRecovery, note = true, true
		case strings.Contains(line, "prepared transaction") || strings.Contains(line, "XA prepared"):
			rec.Prepared, note = true, true
		case strings.Contains(line, "Rolled back recovered transaction"),
			strings.Contains(line, "Rollback of non-prepared transactions completed"),
			strings.Contains(line, "Crash table recovery finished"),
			strings.Contains(line, "Crash recovery finished"):
			note = true
		}
		if m := rolledBackTrx.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			rec.RolledBack += n
			note = true
		}
		if strings.Contains(line, "[ERROR]") {
			rec.Errors = append(rec.Errors, trimLogPrefix(line))
		} else if note {
			rec.Notes = append(rec.Notes, trimLogPrefix(line))
		}
	}
	return rec
}

// trimLogPrefix drops the "2026-11-25 19:40:01 0 " timestamp and thread id.
func trimLogPrefix(line string) string {
	if i := strings.Index(line, "["); i > 0 && i < 40 {
		return line[i:]
	}
	return line
}
