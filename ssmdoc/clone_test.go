package ssmdoc_test

import (
	"strings"
	"testing"
)

// The parameters become hostagent clone's argv, volumes and mounts paired
// in order, lists split into repeated flags.
func TestCloneScriptArgv(t *testing.T) {
	d := mustLoad(t, "clone")
	r := runDocument(t, d, map[string]string{"volumes": vol1 + "," + vol2, "mounts": "/var/lib/mysql,/var/log/mysql",
		"sourceHost": "10.0.0.5", "sourceGtid": "0-1-77", "serverId": "201", "sourceServerIds": "1,100",
		"startCommand": "systemctl start mariadb", "stopCommand": "systemctl stop mariadb", "runId": "r-1"}, "0", true)
	want := []string{"clone", "--volume", vol1, "--volume", vol2, "--mount", "/var/lib/mysql", "--mount", "/var/log/mysql",
		"--source-host", "10.0.0.5", "--source-port", "3306", "--replication-defaults-file", "/etc/quiesce/replication.cnf",
		"--source-gtid", "0-1-77", "--start-command", "systemctl start mariadb", "--stop-command", "systemctl stop mariadb",
		"--server-id", "201", "--source-server-id", "1", "--source-server-id", "100", "--timeout", "30m", "--run-id", "r-1"}
	if r.code != 0 || strings.Join(r.argv, " ") != strings.Join(want, " ") {
		t.Errorf("exit %d argv %q\nwant %q", r.code, r.argv, want)
	}
	r = runDocument(t, d, map[string]string{"volumes": vol1, "mounts": "/data", "sourceHost": "db1",
		"sourceLogFile": "bin.000003", "sourceLogPos": "1234"}, "0", true)
	if !strings.Contains(strings.Join(r.argv, " "), "--source-log-file bin.000003 --source-log-pos 1234") {
		t.Errorf("argv %q", r.argv)
	}
	r = runDocument(t, d, map[string]string{"volumes": vol1, "mounts": "/data", "sourceHost": "db1"}, "0", true)
	if r.argv != nil || r.code != 2 || !strings.Contains(r.stdout, "no coordinates") {
		t.Errorf("no coordinates: argv %q exit %d stdout %q", r.argv, r.code, r.stdout)
	}
}

// Hostile values are refused by the document's patterns, naming the
// parameter; a free-form start command is not a service start.
func TestCloneRenderRefusesHostileValues(t *testing.T) {
	d := mustLoad(t, "clone")
	base := map[string]string{"volumes": vol1, "mounts": "/data", "sourceHost": "db1"}
	for _, name := range d.ParameterNames() {
		for _, v := range injections {
			params := map[string]string{}
			for k, val := range base {
				params[k] = val
			}
			params[name] = v
			if _, _, err := d.Render(params); err == nil {
				t.Errorf("Render accepted %s=%q", name, v)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name parameter %s", err, name)
			}
		}
	}
	for _, v := range []string{"rm -rf /", "systemctl start mariadb; reboot", "systemctl stop mariadb", "/usr/sbin/mariadbd"} {
		if err := d.Validate("startCommand", v); err == nil {
			t.Errorf("startCommand %q accepted", v)
		}
	}
}
