package mysqllock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }

const testSecret = "Pa55-w0rd-NEVER-PRINT"

func TestConnConfigNeverPrintsPassword(t *testing.T) {
	c := connConfig{Net: "unix", Addr: "/run/mysqld/mysqld.sock", User: "backup", Password: testSecret}
	co := clientOptions{User: "backup", Password: testSecret}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, co), fmt.Sprintf(verb, []any{c, co}))
	}
	j, _ := json.Marshal(struct {
		C  connConfig
		Co clientOptions
	}{c, co})
	outputs = append(outputs, string(j))

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("connect", "mysql", c, "opts", co, "pw", co.Password)
		l.Info("connect", slog.Any("cfg", c), slog.Any("ptr", &c))
	}
	outputs = append(outputs, buf.String())
	for _, out := range outputs {
		if strings.Contains(out, testSecret) {
			t.Errorf("password printed: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprint(c), "password:yes") {
		t.Errorf("String should say a password is set: %s", c)
	}
}
