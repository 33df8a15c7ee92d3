package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// The hostagent binary logs in through an option file whose password needs
// the file's quoting and escapes (p a"s's #x), checks, freezes and thaws with
// it: the same file the mariadb client reads.
func TestMariaDBOptionFileWithTrickyPassword(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	const password = `p a"s's #x`
	for _, q := range []string{
		`CREATE OR REPLACE USER 'tricky'@'localhost' IDENTIFIED BY 'p a"s\'s #x'`,
		"GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO 'tricky'@'localhost'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	body := fmt.Sprintf("[client]\nuser = tricky\npassword = \"p a\\\"s's #x\" # quoted, escaped\nsocket = %s\n", m.Socket)
	if err := os.WriteFile(cnf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	r := e.run("check", "--mount", fs.Mount, "--mysql-defaults-file", cnf, "--mysql-lock", "backup-stage")
	if r.code != 0 {
		t.Fatalf("check through the option file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rep := e.freeze(t, "--mount", fs.Mount, "--mysql-defaults-file", cnf, "--mysql-lock", "backup-stage",
		"--timeout", "20s", "--run-id", "tricky-pw")
	if rep.Lock.Mode != contract.LockBackupStage {
		t.Fatalf("lock %+v", rep.Lock)
	}
	w := insert(t, db)
	requireBlocked(t, w, 300*time.Millisecond)
	e.thaw(t, rep.RunID, 0)
	requireCompletes(t, w, 5*time.Second)
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, password) {
			t.Errorf("output shows the password: %s", out)
		}
	}
}
