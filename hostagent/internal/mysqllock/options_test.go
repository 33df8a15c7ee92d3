package mysqllock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
)

func validOptions() Options {
	return Options{Mode: contract.LockAuto, LockWait: 5 * time.Second, LongQueryLimit: 10 * time.Second}
}

func writeFile(t *testing.T, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	good := writeFile(t, "good.cnf", "[client]\nuser=backup\npassword=x\n", 0o600)
	malformed := writeFile(t, "bad.cnf", "[client\nuser=x\n", 0o600)
	include := writeFile(t, "inc.cnf", "[client]\n!include /etc/mysql/other.cnf\n", 0o600)
	noGroup := writeFile(t, "nogroup.cnf", "user=x\n", 0o600)
	relSocket := writeFile(t, "relsock.cnf", "[client]\nsocket=run/mysqld.sock\n", 0o600)
	badPort := writeFile(t, "port.cnf", "[client]\nhost=db\nport=99999\n", 0o600)
	unterminated := writeFile(t, "quote.cnf", "[client]\npassword=\"abc\n", 0o600)
	dir := t.TempDir()

	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string // "" = valid
	}{
		{"defaults", func(o *Options) {}, ""},
		{"every mode", func(o *Options) { o.Mode = contract.LockBackupStage }, ""},
		{"none", func(o *Options) { o.Mode = contract.LockNone }, ""},
		{"good defaults file", func(o *Options) { o.DefaultsFile = good }, ""},
		{"long query limit off", func(o *Options) { o.LongQueryLimit = 0 }, ""},
		{"sub-second lock wait", func(o *Options) { o.LockWait = 500 * time.Millisecond }, ""},
		{"lock wait at max", func(o *Options) { o.LockWait = 10 * time.Minute }, ""},
		{"unknown mode", func(o *Options) { o.Mode = "flush" }, `"flush"`},
		{"empty mode", func(o *Options) { o.Mode = "" }, `--mysql-lock ""`},
		{"uppercase mode", func(o *Options) { o.Mode = "FTWRL" }, `"FTWRL"`},
		{"lock wait zero", func(o *Options) { o.LockWait = 0 }, "--lock-wait 0s"},
		{"lock wait negative", func(o *Options) { o.LockWait = -time.Second }, "--lock-wait -1s"},
		{"lock wait too long", func(o *Options) { o.LockWait = 11 * time.Minute }, "--lock-wait 11m0s"},
		{"long query limit negative", func(o *Options) { o.LongQueryLimit = -time.Second }, "--long-query-limit -1s"},
		{"long query limit absurd", func(o *Options) { o.LongQueryLimit = 25 * time.Hour }, "--long-query-limit 25h0m0s"},
		{"kill without limit", func(o *Options) { o.LongQueryLimit = 0; o.KillLongQueries = true }, "--kill-long-queries"},
		{"relative socket", func(o *Options) { o.Socket = "mysqld.sock" }, `"mysqld.sock"`},
		{"missing defaults file", func(o *Options) { o.DefaultsFile = "/nonexistent/my.cnf" }, "/nonexistent/my.cnf"},
		{"relative defaults file", func(o *Options) { o.DefaultsFile = "my.cnf" }, `"my.cnf"`},
		{"defaults file is a dir", func(o *Options) { o.DefaultsFile = dir }, "not a regular file"},
		{"malformed defaults file", func(o *Options) { o.DefaultsFile = malformed }, "line 1: unterminated group header"},
		{"include in defaults file", func(o *Options) { o.DefaultsFile = include }, "!include is not supported"},
		{"option before group", func(o *Options) { o.DefaultsFile = noGroup }, `option "user" before any [group]`},
		{"relative socket in file", func(o *Options) { o.DefaultsFile = relSocket }, `socket "run/mysqld.sock"`},
		{"bad port in file", func(o *Options) { o.DefaultsFile = badPort }, `port "99999"`},
		{"unterminated quote", func(o *Options) { o.DefaultsFile = unterminated }, "unterminated \" quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.mutate(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fixture.RequireUsageError(t, err, tt.wantErr)
		})
	}
}

func TestValidateUnreadableDefaultsFile(t *testing.T) {
	p := writeFile(t, "secret.cnf", "[client]\npassword=x\n", 0o000)
	if os.Geteuid() == 0 {
		// root reads mode 000 files; a directory entry that cannot be
		// traversed is unreadable even for the checks below, so use a
		// path through a regular file instead.
		p = filepath.Join(p, "my.cnf")
	}
	o := validOptions()
	o.DefaultsFile = p
	err := o.Validate()
	if !errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Validate() = %v, want ErrUsage naming %s", err, p)
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want clientOptions
	}{
		{"basic", "[client]\nuser=backup\npassword=pw\nsocket=/run/mysqld/mysqld.sock\n",
			clientOptions{User: "backup", Password: "pw", Socket: "/run/mysqld/mysqld.sock"}},
		{"spaces and case", "  [Client]  \n  user   =  backup  \n", clientOptions{User: "backup"}},
		{"comments", "# top\n; also\n[client]\nuser=a # trailing\n#user=b\n", clientOptions{User: "a"}},
		{"double quotes with hash and escapes", "[client]\npassword=\"p#w\\\"d\\s\\\\\"\n", clientOptions{Password: `p#w"d \`}},
		{"single quotes keep hash, decode escapes", "[client]\npassword='a\\tb # c' # comment\n", clientOptions{Password: "a\tb # c"}},
		{"quote inside unquoted value", "[client]\npassword=it's\n", clientOptions{Password: "it's"}},
		{"unquoted hash is a comment", "[client]\npassword=ab#cd\n", clientOptions{Password: "ab"}},
		{"equals in value", "[client]\npassword=a=b\n", clientOptions{Password: "a=b"}},
		{"empty value", "[client]\npassword=\n", clientOptions{}},
		{"other groups ignored", "[mysqld]\nuser=mysql\nsocket=/x\n[client]\nuser=c\n[mysqldump]\nuser=d\n", clientOptions{User: "c"}},
		{"quiesce group overrides client", "[client]\nuser=c\n[quiesce]\nuser=q\n", clientOptions{User: "q"}},
		{"later line wins", "[client]\nuser=a\nuser=b\n", clientOptions{User: "b"}},
		{"host and port", "[client]\nhost=db.internal\nport=3307\n", clientOptions{Host: "db.internal", Port: 3307}},
		{"flags without value and unknown keys", "[client]\nssl\ndefault-character-set=utf8mb4\nuser=u\n", clientOptions{User: "u"}},
		{"underscore keys", "[client]\nUSER=u\n", clientOptions{User: "u"}},
		{"BOM and CRLF", "\ufeff[client]\r\nuser=u\r\n", clientOptions{User: "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDefaults("my.cnf", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v (passwords %q vs %q)", got, tt.want, string(got.Password), string(tt.want.Password))
			}
		})
	}
}

func TestParseDefaultsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[client\n", "line 1: unterminated group header"},
		{"[]\n", "line 1: empty group name"},
		{"[client] junk\n", "unexpected text after group header"},
		{"user=x\n", "before any [group]"},
		{"[client]\n!includedir /etc/mysql/conf.d/\n", "line 2: !includedir is not supported"},
		{"[client]\npassword='abc\n", "option password: unterminated ' quote"},
		{"[client]\npassword=\"abc\" x\n", "unexpected text after the closing quote"},
		{"[client]\nport=abc\n", `port "abc"`},
		{"[client]\nbad key=1\n", "malformed option"},
	}
	for _, tt := range tests {
		_, err := parseDefaults("f.cnf", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse %q: err %v, want %q", tt.in, err, tt.want)
		}
	}
	// A malformed password line must not echo the password.
	_, err := parseDefaults("f.cnf", []byte("[client]\npassword=\"Sup3rSecretValue\n"))
	if err == nil || strings.Contains(err.Error(), "Sup3rSecretValue") {
		t.Errorf("error leaks or is missing: %v", err)
	}
}

func TestTarget(t *testing.T) {
	file := writeFile(t, "my.cnf", "[client]\nuser=backup\npassword=pw\nsocket=/srv/mysql.sock\n", 0o600)
	tcp := writeFile(t, "tcp.cnf", "[client]\nhost=10.0.0.5\nuser=backup\n", 0o600)
	localhost := writeFile(t, "lh.cnf", "[client]\nhost=localhost\nport=3307\nsocket=/srv/x.sock\n", 0o600)
	tests := []struct {
		name string
		o    Options
		want connConfig
	}{
		{"file", Options{DefaultsFile: file}, connConfig{Net: "unix", Addr: "/srv/mysql.sock", User: "backup", Password: "pw"}},
		{"flags override file", Options{DefaultsFile: file, Socket: "/run/other.sock", User: "admin"},
			connConfig{Net: "unix", Addr: "/run/other.sock", User: "admin", Password: "pw"}},
		{"tcp host", Options{DefaultsFile: tcp}, connConfig{Net: "tcp", Addr: "10.0.0.5:3306", User: "backup"}},
		{"localhost means socket", Options{DefaultsFile: localhost}, connConfig{Net: "unix", Addr: "/srv/x.sock", User: "root"}},
		{"socket flag wins over tcp host", Options{DefaultsFile: tcp, Socket: "/s.sock"}, connConfig{Net: "unix", Addr: "/s.sock", User: "backup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.target()
			if err != nil {
				t.Fatal(err)
			}
			if got.Net != tt.want.Net || got.Addr != tt.want.Addr || got.User != tt.want.User || got.Password != tt.want.Password {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	// Default: root over the first usual socket that exists (or the first path).
	saved := socketPaths
	defer func() { socketPaths = saved }()
	socketPaths = []string{filepath.Join(t.TempDir(), "none.sock")}
	got, err := Options{}.target()
	if err != nil || got.Net != "unix" || got.Addr != socketPaths[0] || got.User != "root" || got.Password != "" {
		t.Errorf("default target %s, %v", got, err)
	}
}

func TestResolve(t *testing.T) {
	saved := socketPaths
	defer func() { socketPaths = saved }()
	socketPaths = []string{filepath.Join(t.TempDir(), "absent.sock")}

	tests := []struct {
		name         string
		o            Options
		wantMode     string
		wantInvolved bool
	}{
		{"auto, nothing named, no socket", Options{Mode: contract.LockAuto}, contract.LockNone, false},
		{"auto, explicit", Options{Mode: contract.LockAuto, Explicit: true}, contract.LockAuto, true},
		{"auto, socket given", Options{Mode: contract.LockAuto, Socket: "/x.sock"}, contract.LockAuto, true},
		{"auto, defaults file given", Options{Mode: contract.LockAuto, DefaultsFile: "/etc/q.cnf"}, contract.LockAuto, true},
		{"auto, user given", Options{Mode: contract.LockAuto, User: "backup"}, contract.LockAuto, true},
		{"ftwrl without server named", Options{Mode: contract.LockFTWRL}, contract.LockFTWRL, true},
		{"none with server named", Options{Mode: contract.LockNone, Explicit: true}, contract.LockNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, involved := Resolve(tt.o)
			if got.Mode != tt.wantMode || involved != tt.wantInvolved {
				t.Errorf("Resolve = (%s, %t), want (%s, %t)", got.Mode, involved, tt.wantMode, tt.wantInvolved)
			}
		})
	}
}

func TestResolveFindsUsualSocket(t *testing.T) {
	saved := socketPaths
	defer func() { socketPaths = saved }()
	dir := t.TempDir()
	sock := filepath.Join(dir, "mysqld.sock")
	l, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A regular file at a socket path is not a server.
	plain := filepath.Join(dir, "plain.sock")
	os.WriteFile(plain, nil, 0o600)
	socketPaths = []string{plain, sock}
	if o, involved := Resolve(Options{Mode: contract.LockAuto}); !involved || o.Mode != contract.LockAuto {
		t.Errorf("Resolve with a live socket = (%s, %t), want (auto, true)", o.Mode, involved)
	}
	if got := findSocket(); got != sock {
		t.Errorf("findSocket = %q, want %q", got, sock)
	}
}

func TestVersionAndModes(t *testing.T) {
	tests := []struct {
		version, requested, want, wantErr string
	}{
		{"10.11.19-MariaDB-0+deb12u1-log", "auto", "backup-stage", ""},
		{"10.4.1-MariaDB", "auto", "backup-stage", ""},
		{"10.3.39-MariaDB", "auto", "ftwrl", ""},
		{"10.3.39-MariaDB", "backup-stage", "", "needs MariaDB 10.4 or later; server is MariaDB 10.3.39"},
		{"11.4.2-MariaDB-log", "instance", "", "needs MySQL 8.0 or later; server is MariaDB 11.4.2"},
		{"8.0.36", "auto", "ftwrl", ""},
		{"8.4.0", "instance", "instance", ""},
		{"5.7.44-log", "instance", "", "server is MySQL 5.7.44"},
		{"8.0.36-0ubuntu0.22.04.1", "backup-stage", "", "server is MySQL 8.0.36"},
		{"5.7.44", "ftwrl", "ftwrl", ""},
	}
	dkw := parseVersion("10.11.6-MariaDB")
	dkw.DelayKeyWriteAll = true
	if got, _ := dkw.concreteMode(contract.LockAuto); got != contract.LockFTWRL {
		t.Errorf("auto with delay_key_write=ALL on MariaDB = %q, want ftwrl", got)
	}
	for _, tt := range tests {
		si := parseVersion(tt.version)
		got, err := si.concreteMode(tt.requested)
		if tt.wantErr != "" {
			if !errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %s: err %v, want ErrUsage with %q", tt.version, tt.requested, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %s: (%q, %v), want %q", tt.version, tt.requested, got, err, tt.want)
		}
	}
}

func TestLockWaitSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{
		time.Millisecond: 1, 500 * time.Millisecond: 1, time.Second: 1,
		1500 * time.Millisecond: 2, 5 * time.Second: 5, 10 * time.Minute: 600,
	} {
		if got := lockWaitSeconds(d); got != want {
			t.Errorf("lockWaitSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
