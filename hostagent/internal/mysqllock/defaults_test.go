package mysqllock

import (
	"bytes"
	"context"
	"fmt"

	"github.com/quiesce/quiesce/contract"
	"os"
	execpkg "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// myPrintDefaults runs MariaDB's own option-file reader on file and returns
// the [client]/[quiesce] options it yields, decoded into clientOptions the way
// the client applies them (later lines win).
func myPrintDefaults(t *testing.T, bin, file string) clientOptions {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := execpkg.CommandContext(ctx, bin, "--defaults-file="+file, "client", "quiesce")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("my_print_defaults %s: %v (%s)", file, err, stderr.String())
	}
	var co clientOptions
	if len(out) == 0 {
		return co
	}
	// One "--key=value\n" per option; no test value contains "\n--".
	for _, opt := range strings.Split(strings.TrimSuffix("\n"+string(out), "\n"), "\n--")[1:] {
		key, value, _ := strings.Cut(opt, "=")
		// Applied the way the client applies them (set: loose-X as X, port checked).
		if err := co.set(key, value); err != nil {
			t.Fatalf("my_print_defaults gave %v", err)
		}
	}
	return co
}

// parseDefaults must read every value exactly as MariaDB's option-file
// reader (mysys/my_default.c) does, so the password that logs in with the
// mariadb client logs in with hostagent: compared against my_print_defaults,
// not against hand-written expectations.
func TestParseDefaultsMatchesMyPrintDefaults(t *testing.T) {
	bin, err := execpkg.LookPath("my_print_defaults")
	if err != nil {
		t.Skip("my_print_defaults (MariaDB client tools) not installed: nothing to compare with")
	}
	files := []string{
		`password = "p a\"s's #x"`,
		`password="x\"y"`,
		`password='x\'y'`,
		`password="p#w\"d\s\\"`,
		`password='a\tb # c' # comment`,
		`password="a\\\"b"`,
		`password=it's # not a comment: the quote opened a string`,
		`password=ab#cd`,
		`password=ab\#cd`,
		`password=a\\#b`,
		`password=a\"b\'c`,
		`password=\"quoted\"`,
		`password="a\\"`,
		`password="ab\"`,
		`password='abc\'`,
		`password='a'b'`,
		`password="a"b"`,
		`password=abc"`,
		`password=''`,
		`password=""`,
		`password=a\sb\s`,
		`password=a\xb\qc\`,
		`password=a\nb\rc\bd`,
		`password=a=b=c`,
		`password =	 spaced out 	`,
		"password=\xa0nbsp\xa0\v\f",
		"password=caf\xc3\xa0",
		`password=`,
		`loose-password="lo\"ose"`,
		`pass#word=x`,
		"user=u\r",
		"[ client ]\nuser=leading space in the group name",
		"[CLIENT  ]\nuser=case and trailing space",
		"[mysqld]\nuser=mysql\n[client]\nuser=c\n[mysqldump]\nuser=d",
		"[client]\nuser=c\n[quiesce]\nuser=q\n[client]\nhost=h",
		"  # indented comment\n\t; another\nuser=a",
		`socket=/run/my sql/"x".sock`,
	}
	dir := t.TempDir()
	for i, body := range files {
		if !strings.HasPrefix(body, "[") {
			body = "[client]\n" + body
		}
		body += "\n"
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			path := filepath.Join(dir, strconv.Itoa(i)+".cnf")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			want := myPrintDefaults(t, bin, path)
			got, err := parseDefaults("my.cnf", []byte(body))
			if err != nil {
				t.Fatalf("%q: %v; my_print_defaults reads %+v", body, err, want)
			}
			if got != want {
				t.Errorf("%q:\n got %+v (password %q)\nwant %+v (password %q), as my_print_defaults reads it",
					body, got, string(got.Password), want, string(want.Password))
			}
		})
	}
}

// Where MariaDB's reader would keep quote characters as part of the value (a
// value that starts with a quote and does not end with the same one), or read
// a key no client knows, hostagent refuses the file instead of logging in
// with what is almost certainly a typo. my_print_defaults shows the literal
// quote it would have used.
func TestParseDefaultsRefusesWhatMariaDBKeepsLiterally(t *testing.T) {
	bin, err := execpkg.LookPath("my_print_defaults")
	if err != nil {
		t.Skip("my_print_defaults (MariaDB client tools) not installed: nothing to compare with")
	}
	tests := []struct{ line, wantErr, mariadbReads string }{
		{`password="abc`, `unterminated " quote`, `"abc`},
		{`password="`, `unterminated " quote`, `"`},
		{`password='abc\' x`, `unterminated ' quote`, `'abc' x`},
		{`user = "back up" ; not a comment`, "unexpected text after the closing quote", `"back up" ; not a comment`},
		{`password='abc' x # c`, "unexpected text after the closing quote", `'abc' x`},
		{`password # the client prompts`, "password without a value", ``},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		body := "[client]\n" + tt.line + "\n"
		path := filepath.Join(dir, strconv.Itoa(i)+".cnf")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		mp := myPrintDefaults(t, bin, path)
		if got := string(mp.Password) + mp.User; got != tt.mariadbReads {
			t.Errorf("%q: my_print_defaults reads %q, the test expects %q", tt.line, got, tt.mariadbReads)
		}
		_, err := parseDefaults("my.cnf", []byte(body))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: err %v, want %q", tt.line, err, tt.wantErr)
		}
	}
}

func TestReadDefaultsFileRefusesWorldWritable(t *testing.T) {
	p := writeFile(t, "ww.cnf", "[client]\nuser=u\n", 0o600)
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := readDefaultsFile(p); err == nil || !strings.Contains(err.Error(), "world-writable") || !strings.Contains(err.Error(), p) {
		t.Fatalf("readDefaultsFile(world-writable) = %v, want an error naming the file", err)
	}
}

func TestParseDefaultsRefusesOverlongLine(t *testing.T) {
	long := "[client]\npassword=" + strings.Repeat("x", maxOptionLine) + "\n"
	if _, err := parseDefaults("f.cnf", []byte(long)); err == nil || !strings.Contains(err.Error(), "line 2: longer than") {
		t.Fatalf("overlong line: %v", err)
	}
	ok := "[client]\npassword=" + strings.Repeat("x", maxOptionLine-len("password=")-1) + "\n"
	if co, err := parseDefaults("f.cnf", []byte(ok)); err != nil || len(co.Password) != maxOptionLine-len("password=")-1 {
		t.Fatalf("longest line MariaDB reads whole: %v", err)
	}
}

// A real server, users whose passwords need the option file's quoting and
// escapes: the file that logs in with the mariadb client logs in through
// hostagent's option-file path too.
func TestDefaultsFileTrickyPasswordsLogIn(t *testing.T) {
	m, db := server(t)
	client, clientErr := execpkg.LookPath("mariadb")
	tests := []struct {
		user, password, written string
	}{
		{"tricky1", `p a"s's #x`, `"p a\"s's #x"`},
		{"tricky2", `x"y`, `"x\"y"`},
		{"tricky3", `a\b #c`, `'a\\b #c'`},
		{"tricky4", ` lead;trail `, `"\slead;trail\s"`},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			exec(t, db, fmt.Sprintf("CREATE OR REPLACE USER '%s'@'localhost' IDENTIFIED BY %s", tt.user, sqlString(tt.password)),
				fmt.Sprintf("GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO '%s'@'localhost'", tt.user))
			t.Cleanup(func() { db.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'localhost'", tt.user)) })
			cnf := writeFile(t, "tricky.cnf", fmt.Sprintf("[client]\nuser = %s\npassword = %s # the password\nsocket = %s\n",
				tt.user, tt.written, m.Socket), 0o600)

			if clientErr == nil { // the reference: MariaDB's own client reads the same file
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				out, err := execpkg.CommandContext(ctx, client, "--defaults-file="+cnf, "-N", "-e", "SELECT CURRENT_USER()").CombinedOutput()
				if err != nil || !strings.Contains(string(out), tt.user+"@localhost") {
					t.Fatalf("mariadb client with the file: %v: %s", err, out)
				}
			}
			o := Options{Mode: contract.LockBackupStage, DefaultsFile: cnf, LockWait: time.Second}
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if _, err := Check(context.Background(), o); err != nil {
				t.Fatalf("Check through the option file: %v", err)
			}
			l, _ := acquire(t, o)
			if err := l.Release(context.Background()); err != nil {
				t.Errorf("release: %v", err)
			}
		})
	}
}

// sqlString quotes s as a MariaDB string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
