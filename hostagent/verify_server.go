package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
)

// startServer starts the throwaway server as the datadir's owner. A server
// that cannot start is a failed verification (reported, nil server).
func (v *verifier) startServer(ctx context.Context) (*restore.Server, error) {
	if v.binlog != "" {
		if _, err := restore.RewriteIndex(v.binlog); err != nil {
			return nil, err
		}
	}
	spec, err := v.serverSpec()
	if err != nil {
		return nil, err
	}
	var srv *restore.Server
	err = v.timed("start", func() (err error) {
		srv, err = restore.StartServer(ctx, spec)
		return err
	})
	v.recordRecovery(filepath.Join(spec.RunDir, "error.log"))
	if errors.Is(err, restore.ErrServerExited) {
		v.problem("server did not start on the restored datadir: %s", startFailure(filepath.Join(spec.RunDir, "error.log"), err))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v.rep.StartMS = float64(srv.StartDuration.Microseconds()) / 1000
	v.rep.ServerVersion = srv.Version
	v.undo.Push("shut down server", func(ctx context.Context) error {
		return v.timed("shutdown", func() error { return srv.Shutdown(ctx) })
	})
	return srv, nil
}

func (v *verifier) serverSpec() (restore.ServerSpec, error) {
	uid, gid, err := restore.Owner(v.datadir)
	if err != nil {
		return restore.ServerSpec{}, err
	}
	// The server runs as the datadir's owner: it must reach the datadir
	// through the private work dir, and own its run dir.
	if err := restore.ChownPath(v.work, filepath.Join(v.work, "mnt"), uid, gid); err != nil {
		return restore.ServerSpec{}, err
	}
	if err := restore.CheckTraversable(v.datadir, uid, gid); err != nil {
		return restore.ServerSpec{}, fmt.Errorf("%w: %w", contract.ErrUsage, err)
	}
	run := filepath.Join(v.work, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		return restore.ServerSpec{}, fmt.Errorf("run dir: %w", err)
	}
	if err := os.Chown(run, uid, gid); err != nil {
		return restore.ServerSpec{}, fmt.Errorf("run dir: %w", err)
	}
	settings := append([]string(nil), v.in.settings...)
	if v.in.logGroupHomeRel != "" {
		dirs, err := v.set.Locate(v.in.logGroupHomeRel)
		if err != nil || len(dirs) != 1 {
			return restore.ServerSpec{}, classify(fmt.Errorf("--innodb-log-group-home-dir %q: found at %v (%v): %w",
				v.in.logGroupHomeRel, dirs, err, restore.ErrAmbiguous))
		}
		settings = append(settings, "--innodb-log-group-home-dir="+dirs[0])
	}
	return restore.ServerSpec{
		Binary: v.in.mysqld, DataDir: v.datadir, RunDir: run, UID: uid, GID: gid,
		// Its own server_id, far from the usual small ones, so nothing the
		// copy writes can pass for the source's events.
		ServerID: 4294000000 + uint32(os.Getpid()%900000),
		LogBin:   v.binlog, Settings: settings, OperatorOptions: v.in.operatorOptions,
		// Private socket, no network: the restored grants are not needed,
		// and a snapshot's passwords must not matter to its verification.
		Extra:   []string{"--skip-grant-tables"},
		Journal: v.journal,
	}, nil
}

// startFailure names why the server did not start: its [ERROR] lines.
func startFailure(errorLog string, err error) string {
	data, _ := os.ReadFile(errorLog)
	lines := restore.ErrorLines(bytes.NewReader(data), 8)
	if len(lines) == 0 { // e.g. an option it refused, printed before the log opened
		lines = strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
	}
	if len(lines) == 0 || lines[0] == "" {
		return strings.SplitN(err.Error(), "\n", 2)[0]
	}
	return strings.Join(lines, " | ")
}

func (v *verifier) recordRecovery(errorLog string) {
	data, err := os.ReadFile(errorLog)
	if err != nil {
		return
	}
	v.rep.Recovery = restore.ParseRecovery(bytes.NewReader(data))
}

// checkServer runs CHECK TABLE, the GTID comparison and the operator's checks.
func (v *verifier) checkServer(ctx context.Context, srv *restore.Server) error {
	db, err := srv.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var tables []string
	err = v.timed("check_tables", func() error {
		if tables, err = restore.BaseTables(ctx, db); err != nil {
			return err
		}
		failed, err := restore.CheckTables(ctx, db, tables)
		v.rep.TablesChecked = len(tables)
		v.rep.TablesFailed = append(v.rep.TablesFailed, failed...)
		return err
	})
	for _, f := range v.rep.TablesFailed {
		v.problem("CHECK TABLE %s: %s", f.Table, f.Message)
	}
	if errors.Is(err, restore.ErrServerGone) {
		v.problem("%v; error log: %s", err, startFailure(srv.ErrorLog, err))
		return nil
	}
	if err != nil {
		return err
	}
	if err := v.timed("gtid", func() error { return v.checkGTID(ctx, db, srv.Version) }); err != nil {
		return err
	}
	return v.timed("checks", func() error { return v.runChecks(ctx, db) })
}

func (v *verifier) checkGTID(ctx context.Context, db *sql.DB, version string) error {
	got, err := restore.ServerGTID(ctx, db, version)
	if err != nil {
		return err
	}
	g := &contract.GTIDCheck{Want: v.in.gtid, Got: got}
	if !v.in.expectGTID {
		g.Skipped = "no --expect-gtid given"
	} else if g.Match = restore.SameGTID(v.in.gtid, got); !g.Match {
		v.problem("GTID state of the restored server %q is not the tagged %q", got, v.in.gtid)
	}
	v.rep.GTID = g
	return nil
}

func (v *verifier) runChecks(ctx context.Context, db *sql.DB) error {
	for _, stmt := range v.in.checks {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := restore.RunCheck(ctx, db, stmt)
		if err := ctx.Err(); err != nil {
			return err // cut short: says nothing about the statement
		}
		v.rep.Checks = append(v.rep.Checks, c)
		if !c.OK {
			v.problem("check %q returned %s, want one true row", oneLine(stmt), c.Got)
		}
	}
	return nil
}

// finish completes the report after run: the error (if any) as a problem,
// ok, and the total duration.
func (v *verifier) finish(runErr error) contract.VerifyReport {
	v.rep.OK, v.rep.DurationMS = v.end(runErr)
	return v.rep
}
