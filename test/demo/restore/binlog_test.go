package restore

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseIndex(t *testing.T) {
	got, err := ParseIndex(strings.NewReader("./binlog.000001\n./binlog.000002\n\n"))
	if err != nil || !reflect.DeepEqual(got, []string{"./binlog.000001", "./binlog.000002"}) {
		t.Fatalf("ParseIndex = %q, %v", got, err)
	}
}

// Output shape of mariadb-binlog 10.11 (trimmed).
const binlogDump = `/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;
# at 4
#251125 19:47:40 server id 1  end_log_pos 256 CRC32 0x6e3b1a55 	Start: binlog v 4, server v 10.11.19-MariaDB-log created 251125 19:47:40 at startup
# Warning: this binlog is either in use or was not closed properly.
# at 256
#251125 19:47:40 server id 1  end_log_pos 285 CRC32 0x2a0c9d2e 	Gtid list []
# at 97455
#251125 19:47:41 server id 1  end_log_pos 97526 CRC32 0x0d9a6b7f 	Xid = 1234
COMMIT/*!*/;
# the word end_log_pos 999999 in a statement comment does not count
DELIMITER ;
`

func TestLastEventEnd(t *testing.T) {
	end, events, err := LastEventEnd(strings.NewReader(binlogDump))
	if err != nil || end != 97526 || events != 3 {
		t.Fatalf("LastEventEnd = %d, %d events, %v; want 97526, 3", end, events, err)
	}
	end, events, err = LastEventEnd(strings.NewReader(""))
	if err != nil || end != 0 || events != 0 {
		t.Fatalf("empty output: %d %d %v", end, events, err)
	}
}

func TestGTIDPositions(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
		err  bool
	}{
		{"0-1-388", "0-1-388", true, false},
		{"0-1-388,1-2-5", "1-2-5,0-1-388", true, false},
		{"0-1-388", "0-1-387", false, false},
		{"0-1-388", "0-2-388", false, false},
		{"0-1-388", "0-1-388,1-1-1", false, false},
		{"", "", true, false},
		{"0-1", "0-1-1", false, true},
		{"0-1-x", "0-1-1", false, true},
		{"0-1-1,0-1-2", "0-1-2", false, true},
	}
	for _, tt := range tests {
		same, err := SameGTIDPos(tt.a, tt.b)
		if same != tt.same || (err != nil) != tt.err {
			t.Errorf("SameGTIDPos(%q, %q) = %v, %v; want %v, err %v", tt.a, tt.b, same, err, tt.same, tt.err)
		}
	}
	p, err := ParseGTIDPos("0-1-388")
	if err != nil || p[0] != (GTID{0, 1, 388}) {
		t.Fatalf("ParseGTIDPos = %v, %v", p, err)
	}
}

// Lines from a real restore of a frozen copy (MariaDB 10.11).
const restoredLog = `2026-11-25 19:47:40 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1-log source revision  as process 1234
2026-11-25 19:47:40 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=44878
2026-11-25 19:47:40 0 [Note] InnoDB: Transaction 325 was in the XA prepared state.
2026-11-25 19:47:40 0 [Note] InnoDB: 1 transaction(s) which must be rolled back or cleaned up in total 0 row operations to undo
2026-11-25 19:47:40 0 [Note] InnoDB: Rollback of non-prepared transactions completed
2026-11-25 19:47:40 0 [Note] Recovering after a crash using binlog
2026-11-25 19:47:40 0 [Note] Found 1 prepared transaction(s) in InnoDB
2026-11-25 19:47:40 0 [Note] Crash table recovery finished.
2026-11-25 19:47:40 0 [Note] /usr/sbin/mariadbd: ready for connections.
`

func TestParseErrorLog(t *testing.T) {
	rec := ParseErrorLog(strings.NewReader(restoredLog))
	if !rec.RedoApplied || !rec.BinlogRecovery || !rec.Prepared || rec.RolledBack != 1 || len(rec.Errors) != 0 {
		t.Fatalf("ParseErrorLog = %+v", rec)
	}
	if len(rec.Notes) != 7 || !strings.HasPrefix(rec.Notes[0], "[Note] InnoDB: Starting crash recovery") {
		t.Fatalf("notes %q", rec.Notes)
	}
	if got := rec.Summary(); got != "redo replay, binlog recovery, prepared trx resolved, 1 trx rolled back" {
		t.Fatalf("Summary = %q", got)
	}
	clean := ParseErrorLog(strings.NewReader("2026-11-25 19:47:40 0 [Note] /usr/sbin/mariadbd: ready for connections.\n" +
		"2026-11-25 19:47:40 0 [ERROR] InnoDB: Page [page id: space=5, page number=3] log sequence number 999 is in the future!\n"))
	if clean.Summary() != "clean start" || len(clean.Errors) != 1 || !strings.HasPrefix(clean.Errors[0], "[ERROR] InnoDB: Page") {
		t.Fatalf("clean/error log = %+v", clean)
	}
}
