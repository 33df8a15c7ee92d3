package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/mysqllock"
)

// cloneFiles writes a replication option file and returns the base args.
func cloneFiles(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	repl := filepath.Join(dir, "repl.cnf")
	if err := os.WriteFile(repl, []byte("[quiesce-replication]\nuser=repl\npassword=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, []string{"--volume", "vol-0abc12345678", "--mount", filepath.Join(dir, "data"), "--source-host", "db1.internal",
		"--replication-defaults-file", repl, "--mysqld", "/bin/true"}
}

// Every bad input is exit 2 with one CloneReport naming the bad value.
func TestCloneInputRefusals(t *testing.T) {
	dir, base := cloneFiles(t)
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	noGroup := filepath.Join(dir, "nogroup.cnf")
	if err := os.WriteFile(noGroup, []byte("[client]\nuser=repl\npassword=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(base); i += 2 {
			if base[i] != flag {
				out = append(out, base[i], base[i+1])
			}
		}
		return out
	}
	gtid := []string{"--source-gtid", "0-1-5"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no coordinates", base, "no coordinates"},
		{"both coordinates", append(base, "--source-gtid", "0-1-5", "--source-log-file", "b.000001", "--source-log-pos", "4"), "exclude each other"},
		{"bad log file", append(base, "--source-log-file", "../x", "--source-log-pos", "4"), `"../x"`},
		{"bad log pos", append(base, "--source-log-file", "b.000001", "--source-log-pos", "3"), `"3"`},
		{"quote in gtid", append(base, "--source-gtid", "0-1-5'"), "not a GTID state"},
		{"no volume", append(without("--volume"), gtid...), "no --volume"},
		{"unpaired mount", append(append(base, gtid...), "--volume", "vol-0abc12345679"), "1 --mount"},
		{"bad volume", append(append(without("--volume"), gtid...), "--volume", "vol-XYZ"), `"vol-XYZ"`},
		{"relative mount", append(append(without("--mount"), gtid...), "--mount", "data"), `"data"`},
		{"unclean mount", append(append(without("--mount"), gtid...), "--mount", full+"/"), "clean absolute"},
		{"bad host", append(append(without("--source-host"), gtid...), "--source-host", "a b"), `"a b"`},
		{"bad port", append(base, append(gtid, "--source-port", "70000")...), "70000"},
		{"no credentials file", append(without("--replication-defaults-file"), gtid...), "no --replication-defaults-file"},
		{"no group", append(append(without("--replication-defaults-file"), gtid...), "--replication-defaults-file", noGroup), "[quiesce-replication]"},
		{"start without stop", append(base, append(gtid, "--start-command", "systemctl start mariadb")...), "go together"},
		{"server id zero", append(base, append(gtid, "--server-id", "0")...), `"0"`},
		{"server id of the source", append(base, append(gtid, "--server-id", "7", "--source-server-id", "7")...), "--server-id 7 is the source's"},
		{"bad timeout", append(base, append(gtid, "--timeout", "0s")...), "--timeout 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"clone"}, tt.args...), &out, &errb)
			if code != int(contract.ExitUsage) {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			var rep contract.CloneReport
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rep); err != nil || dec.More() {
				t.Fatalf("stdout is not one CloneReport: %v", err)
			}
			if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], tt.want) {
				t.Errorf("problems %q, want one naming %s", rep.Problems, tt.want)
			}
			if strings.Contains(out.String()+errb.String(), "s3cret") {
				t.Error("the replication password is in the output")
			}
		})
	}
}

func TestCloneParse(t *testing.T) {
	_, base := cloneFiles(t)
	c := &command{name: "clone", stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	in, err := c.parseClone(append(base, "--source-log-file", "mysql-bin.000042", "--source-log-pos", "91823",
		"--source-port", "3307", "--server-id", "201", "--source-server-id", "1,100"))
	if err != nil {
		t.Fatal(err)
	}
	want := contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: "mysql-bin.000042", LogPos: 91823}
	if in.coords != want || in.sourcePort != 3307 || in.serverID != 201 || fmt.Sprint(in.avoidIDs) != "[1 100]" ||
		in.creds.User != "repl" || string(in.creds.Password) != "s3cret" || !strings.HasPrefix(in.runID, "clone-") {
		t.Errorf("parsed %+v", in)
	}
}

func TestCloneReplicationStatements(t *testing.T) {
	in := cloneInput{sourceHost: "db1", sourcePort: 3306, creds: mysqllock.Credentials{User: "repl", Password: "pw"}}
	gtid, filePos := in, in
	gtid.coords = contract.CloneCoordinates{Mode: contract.CloneByGTID, GTID: "0-1-42"}
	filePos.coords = contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: "bin.000003", LogPos: 1234}
	mariaDB, mysql84, mysql57 := replicaDialect{mariaDB: true}, replicaDialect{sourceSyntax: true}, replicaDialect{}
	tests := []struct {
		name string
		d    replicaDialect
		in   cloneInput
		want string
	}{
		{"mariadb gtid", mariaDB, gtid, "SET GLOBAL gtid_slave_pos = ? [0-1-42] | CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos [db1 3306 repl pw] | START SLAVE []"},
		{"mariadb file/pos", mariaDB, filePos, "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_LOG_FILE=?, MASTER_LOG_POS=?, MASTER_USE_GTID=no [db1 3306 repl pw bin.000003 1234] | START SLAVE []"},
		{"mysql 8.4 gtid", mysql84, gtid, "CHANGE REPLICATION SOURCE TO SOURCE_HOST=?, SOURCE_PORT=?, SOURCE_USER=?, SOURCE_PASSWORD=?, SOURCE_AUTO_POSITION=1 [db1 3306 repl pw] | START REPLICA []"},
		{"mysql 8.4 file/pos", mysql84, filePos, "CHANGE REPLICATION SOURCE TO SOURCE_HOST=?, SOURCE_PORT=?, SOURCE_USER=?, SOURCE_PASSWORD=?, SOURCE_LOG_FILE=?, SOURCE_LOG_POS=? [db1 3306 repl pw bin.000003 1234] | START REPLICA []"},
		{"mysql 5.7 gtid", mysql57, gtid, "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_AUTO_POSITION=1 [db1 3306 repl pw] | START SLAVE []"},
	}
	for _, tt := range tests {
		if got := render(tt.d.pointStatements(tt.in)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	if got := render(mariaDB.resetStatements([]string{"b"})); got != "STOP ALL SLAVES [] | RESET SLAVE ? ALL [] | RESET SLAVE ? ALL [b]" {
		t.Errorf("mariadb reset: %s", got)
	}
	if got := render(mysql84.resetStatements(nil)); got != "STOP REPLICA [] | RESET REPLICA ALL []" {
		t.Errorf("mysql reset: %s", got)
	}
}

func render(stmts []sqlStmt) string {
	var parts []string
	for _, s := range stmts {
		parts = append(parts, fmt.Sprintf("%s %v", s.query, s.args))
	}
	return strings.Join(parts, " | ")
}

func TestCloneReplicaVerdict(t *testing.T) {
	tests := []struct {
		ch   contract.ReplicaChannel
		want verdict
	}{
		{contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "Yes"}, verdictRunning},
		{contract.ReplicaChannel{IORunning: "Connecting", SQLRunning: "Yes"}, verdictWaiting},
		{contract.ReplicaChannel{IORunning: "Connecting", SQLRunning: "Yes", LastIOErrno: 2003}, verdictWaiting},
		{contract.ReplicaChannel{IORunning: "Connecting", SQLRunning: "Yes", LastIOErrno: 1045}, verdictFailed},
		{contract.ReplicaChannel{IORunning: "No", SQLRunning: "Yes", LastIOErrno: 1593}, verdictFailed},
		{contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "No", LastSQLErrno: 1062}, verdictFailed},
		// A receiver connected after a failed attempt runs; the old error is history.
		{contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "Yes", LastIOErrno: 2003}, verdictRunning},
		{contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "Yes", LastSQLErrno: 1032}, verdictWaiting},
	}
	for _, tt := range tests {
		if got := replicaVerdict(tt.ch); got != tt.want {
			t.Errorf("%+v: verdict %d, want %d", tt.ch, got, tt.want)
		}
	}
}
