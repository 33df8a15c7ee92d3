package mysqllock

import (
	"database/sql"
	"strings"
	"testing"
)

func row(kv ...string) statusRow {
	r := statusRow{}
	for i := 0; i+1 < len(kv); i += 2 {
		r[strings.ToLower(kv[i])] = sql.NullString{String: kv[i+1], Valid: kv[i+1] != "NULL"}
	}
	return r
}

func TestChannelFromMySQL8022Columns(t *testing.T) {
	r := row("Channel_Name", "east", "Source_Host", "10.0.0.5", "Source_Port", "3306", "Source_User", "repl",
		"Relay_Source_Log_File", "bin.000007", "Exec_Source_Log_Pos", "4711", "Source_Log_File", "bin.000008",
		"Read_Source_Log_Pos", "99", "Relay_Log_File", "relay.000002", "Relay_Log_Pos", "500",
		"Replica_IO_Running", "Connecting", "Replica_SQL_Running", "No", "Seconds_Behind_Source", "NULL",
		"Executed_Gtid_Set", "uuid-a:1-10,\nuuid-b:1-3", "Retrieved_Gtid_Set", "uuid-a:1-12", "Auto_Position", "1",
		"Last_IO_Errno", "2003", "Last_IO_Error", "can't connect")
	c := r.channel("ignored on MySQL")
	if c.Name != "east" || c.SourceHost != "10.0.0.5" || c.SourcePort != 3306 || c.SourceLogFile != "bin.000007" ||
		c.SourceLogPos != 4711 || c.ReadSourceLogFile != "bin.000008" || c.ReadSourceLogPos != 99 || c.RelayLogPos != 500 {
		t.Errorf("coordinates %+v", c)
	}
	if c.GTID != "uuid-a:1-10,uuid-b:1-3" || c.GTIDReceived != "uuid-a:1-12" || c.UsingGTID != "auto-position" {
		t.Errorf("gtid %+v", c)
	}
	if c.IORunning != "Connecting" || c.SQLRunning != "No" || c.SecondsBehind != nil || c.LastIOErrno != 2003 {
		t.Errorf("threads %+v", c)
	}
}

func TestChannelFromMySQL57AndMariaDBColumns(t *testing.T) {
	old := row("Channel_Name", "", "Master_Host", "h", "Master_Port", "3307", "Relay_Master_Log_File", "b.1",
		"Exec_Master_Log_Pos", "12", "Slave_SQL_Running", "Yes", "Seconds_Behind_Master", "3", "Auto_Position", "0")
	c := old.channel("")
	if c.SourcePort != 3307 || c.SourceLogFile != "b.1" || c.SourceLogPos != 12 || c.SQLRunning != "Yes" ||
		c.SecondsBehind == nil || *c.SecondsBehind != 3 || c.UsingGTID != "No" {
		t.Errorf("MySQL 5.7 row: %+v", c)
	}
	maria := row("Connection_name", "b", "Master_Host", "h", "Using_Gtid", "Slave_Pos", "Gtid_Slave_Pos", "stale", "Gtid_IO_Pos", "1-2-9")
	if c := maria.channel("0-1-5,1-2-8"); c.Name != "b" || c.GTID != "0-1-5,1-2-8" || c.UsingGTID != "Slave_Pos" || c.GTIDReceived != "1-2-9" {
		t.Errorf("MariaDB row: %+v", c)
	}
}

func TestApplierStatements(t *testing.T) {
	for _, tt := range []struct {
		version, verb, name, want string
	}{
		{"10.11.6-MariaDB", "STOP", "", "STOP SLAVE '' SQL_THREAD"},
		{"10.11.6-MariaDB", "START", "o'k\\", `START SLAVE 'o''k\\' SQL_THREAD`},
		{"8.0.21", "STOP", "", "STOP SLAVE SQL_THREAD FOR CHANNEL ''"},
		{"8.0.22", "STOP", "east", "STOP REPLICA SQL_THREAD FOR CHANNEL 'east'"},
		{"8.4.0", "START", "", "START REPLICA SQL_THREAD FOR CHANNEL ''"},
	} {
		si := parseVersion(tt.version)
		if got := applierStatement(si, tt.verb, tt.name); got != tt.want {
			t.Errorf("%s %s %q: %q, want %q", tt.version, tt.verb, tt.name, got, tt.want)
		}
	}
	for v, want := range map[string]string{"10.4.0-MariaDB": "SHOW ALL SLAVES STATUS", "5.7.40": "SHOW SLAVE STATUS",
		"8.0.21": "SHOW SLAVE STATUS", "8.0.22": "SHOW REPLICA STATUS", "9.1.0": "SHOW REPLICA STATUS"} {
		if got := replicaStatusStatement(parseVersion(v)); got != want {
			t.Errorf("%s: %q, want %q", v, got, want)
		}
	}
	if _, err := parseVersion("5.6.51").concreteMode("replica"); err == nil {
		t.Error("MySQL 5.6 (no channels) accepted for replica mode")
	}
	if m, _ := parseVersion("10.11.6-MariaDB").concreteMode("auto"); m == "replica" {
		t.Error("auto picked replica")
	}
}
