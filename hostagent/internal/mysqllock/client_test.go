package mysqllock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.cnf", "[client]\nuser=root\npassword=other\n[Quiesce-Replication]\nuser = repl\npassword = \"p a's #x\" # comment\n", 0o600)
	c, err := ReadCredentials(ok, "quiesce-replication")
	if err != nil || c.User != "repl" || string(c.Password) != "p a's #x" {
		t.Fatalf("got %q %v", c.User, err)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "p a's") {
		t.Errorf("the password prints: %s", s)
	}
	tests := []struct{ name, body, want string }{
		{"client only", "[client]\nuser=repl\npassword=x\n", "no user and password in group [quiesce-replication]"},
		{"no password", "[quiesce-replication]\nuser=repl\n", "no user and password"},
		{"prompt", "[quiesce-replication]\nuser=repl\npassword\n", "password without a value"},
		{"include", "!include /etc/other.cnf\n", "!include is not supported"},
	}
	for _, tt := range tests {
		p := write(strings.ReplaceAll(tt.name, " ", "-")+".cnf", tt.body, 0o600)
		if _, err := ReadCredentials(p, "quiesce-replication"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	ww := write("ww.cnf", "[quiesce-replication]\nuser=repl\npassword=x\n", 0o666)
	if _, err := ReadCredentials(ww, "quiesce-replication"); err == nil || !strings.Contains(err.Error(), "world-writable") {
		t.Errorf("world-writable: %v", err)
	}
}
