package harness

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// ReplicaSnapshot is one `hostagent freeze` → FICLONE of the volume image →
// `hostagent thaw` of the primary or the replica, as the demo's benchmark
// (a) drives hostagent: the Quiesce SSM document does not offer the replica
// lock mode (contract.LockModes), so the Lambda cannot ask for it.
type ReplicaSnapshot struct {
	Of, Mode, RunID string
	Image           string
	Freeze          contract.FreezeReport
	Thaw            contract.ThawReport
	// Start is the freeze command's start, End the thaw command's return.
	Start, End time.Time
	Copy       time.Duration
	// Stall is the primary's writers' slowest commit overlapping Start..End.
	Stall bank.Stall
}

// snapshot freezes vol's server with lock mode, copies the image and thaws.
func (e *ReplicaEnv) snapshot(ctx context.Context, of string, vol *pool.Volume, defaults, mode string) (*ReplicaSnapshot, error) {
	s := &ReplicaSnapshot{Of: of, Mode: mode, RunID: "demo-" + of + "-" + randHex(8)}
	s.Image = filepath.Join(e.Pool.Dir, "snap-"+s.RunID+".img")
	s.Start = time.Now()
	out, code, err := runHostagent(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir), 2*time.Minute, "freeze", "--mount", vol.Dir, "--mysql-defaults-file", defaults,
		"--mysql-lock", mode, "--lock-wait", "10s", "--timeout", "30s", "--run-id", s.RunID)
	if err != nil {
		return s, fmt.Errorf("freeze %s (%s, exit %d): %w", of, mode, code, err)
	}
	if err := json.Unmarshal(out, &s.Freeze); err != nil {
		_, _, _ = runHostagent(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir), 2*time.Minute, "thaw", "--run-id", s.RunID)
		return s, fmt.Errorf("freeze %s: report: %w", of, err)
	}
	cr, cerr := pool.Clone(vol.Image, s.Image)
	s.Copy = cr.Duration
	out, code, err = runHostagent(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir), 2*time.Minute, "thaw", "--run-id", s.RunID)
	s.End = time.Now()
	if err != nil {
		return s, fmt.Errorf("thaw %s (exit %d): %w", of, code, err)
	}
	if cerr != nil {
		return s, fmt.Errorf("snapshot copy of %s: %w", of, cerr)
	}
	if err := json.Unmarshal(out, &s.Thaw); err != nil {
		return s, fmt.Errorf("thaw %s: report: %w", of, err)
	}
	if s.Thaw.ThawedBy != contract.ThawedByCommand || s.Thaw.LockLost != nil {
		return s, fmt.Errorf("thaw %s: thawed by %s (lock lost %v): not application-consistent", of, s.Thaw.ThawedBy, s.Thaw.LockLost != nil)
	}
	if w := e.currentWriter(); w != nil {
		s.Stall = bank.StallDuring(w.Commits(), s.Start, s.End)
	}
	return s, nil
}

func (e *ReplicaEnv) currentWriter() *bank.Writer {
	if e.running == nil || len(e.Writers) == 0 {
		return nil
	}
	return e.Writers[len(e.Writers)-1]
}

// Coordinates are where a clone of s replicates from: a replica's snapshot
// clones to a sibling replica of the same source (the default channel read
// under the lock), a primary's to a replica of the primary itself (its own
// GTID state, else its binlog position).
func (e *ReplicaEnv) Coordinates(s *ReplicaSnapshot) (host string, port int, args []string, err error) {
	if s.Of == "replica" {
		ch, ok := s.Freeze.Lock.Replication.DefaultChannel()
		if !ok {
			return "", 0, nil, fmt.Errorf("freeze report of the replica has no lock.replication channel")
		}
		if ch.GTID == "" {
			return ch.SourceHost, ch.SourcePort, []string{"--source-log-file", ch.SourceLogFile, "--source-log-pos", strconv.FormatUint(ch.SourceLogPos, 10)}, nil
		}
		return ch.SourceHost, ch.SourcePort, []string{"--source-gtid", ch.GTID}, nil
	}
	if g := s.Freeze.Lock.GTIDExecuted; g != "" {
		return "127.0.0.1", e.Primary.Port, []string{"--source-gtid", g}, nil
	}
	return "127.0.0.1", e.Primary.Port, []string{"--source-log-file", s.Freeze.Lock.BinlogFile, "--source-log-pos", strconv.FormatUint(s.Freeze.Lock.BinlogPos, 10)}, nil
}

// Clone is a third server made from a snapshot with `hostagent clone`.
type Clone struct {
	From     string // "replica" or "primary": whose snapshot
	VolumeID string
	Mount    string
	Source   string // host:port it replicates from
	Coords   string
	Exit     int
	Report   contract.CloneReport
	// Replicating is hostagent clone's start → its return with both
	// threads running; CaughtUp is the start → Seconds_Behind_Master 0 with
	// everything the primary had at Replicating applied.
	Replicating, CaughtUp time.Duration
	server                *mariadb.Server // socket only: for queries
}

// CloneFrom restores s onto a new volume (FICLONE of the snapshot image,
// loop-attached as vol-….img) and runs `hostagent clone` on it, then waits
// until the clone has caught up. The clone's server, mount and loop device
// are released by Close.
func (e *ReplicaEnv) CloneFrom(ctx context.Context, s *ReplicaSnapshot, serverID int) (*Clone, error) {
	c := &Clone{From: s.Of, VolumeID: "vol-0c3" + randHex(14), Mount: filepath.Join(e.Opt.WorkDir, "clone-of-"+s.Of)}
	host, port, coords, err := e.Coordinates(s)
	if err != nil {
		return c, err
	}
	c.Source, c.Coords = fmt.Sprintf("%s:%d", host, port), strings.Join(coords, " ")
	cnf, sock, err := e.prepareCloneVolume(ctx, c, s.Image)
	if err != nil {
		return c, err
	}
	c.server = &mariadb.Server{Socket: sock}
	args := append([]string{"clone", "--volume", c.VolumeID, "--mount", c.Mount, "--source-host", host, "--source-port", strconv.Itoa(port),
		"--replication-defaults-file", e.ReplDefaults, "--mysql-defaults-file", cnf, "--server-id", strconv.Itoa(serverID),
		"--source-server-id", strconv.Itoa(primaryServerID), "--source-server-id", strconv.Itoa(replicaServerID), "--timeout", "3m"}, coords...)
	if e.Opt.beforeClone != nil {
		e.Opt.beforeClone(e)
	}
	start := time.Now()
	out, code, err := runHostagent(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir), 4*time.Minute, args...)
	c.Replicating, c.Exit = time.Since(start), code
	if jerr := json.Unmarshal(out, &c.Report); jerr != nil && err == nil {
		err = fmt.Errorf("clone report: %w", jerr)
	}
	if err != nil && len(c.Report.Problems) > 0 { // its own words, not the command line
		return c, fmt.Errorf("hostagent clone of the %s snapshot: exit %d: %s", s.Of, code, strings.Join(c.Report.Problems, "; "))
	}
	if err != nil {
		return c, fmt.Errorf("hostagent clone of the %s snapshot: %w", s.Of, err)
	}
	if err := e.waitLagZero(ctx, c.server, e.Opt.CatchUp); err != nil {
		return c, fmt.Errorf("clone of the %s snapshot: %w", s.Of, err)
	}
	c.CaughtUp = time.Since(start)
	return c, nil
}

// prepareCloneVolume makes the clone's volume and its server's option file
// (own socket, port, pid file; the replica's durability and binlog), and
// registers their release. It returns the option file and the socket.
func (e *ReplicaEnv) prepareCloneVolume(ctx context.Context, c *Clone, snapImage string) (cnf, sock string, err error) {
	img := filepath.Join(e.Pool.Dir, c.VolumeID+".img")
	if _, err := pool.Clone(snapImage, img); err != nil {
		return "", "", fmt.Errorf("create %s from the snapshot: %w", c.VolumeID, err)
	}
	// Buffered, as the restore drill attaches a snapshot's volume: with
	// direct I/O a loop device over a reflinked copy can take the pool's
	// 4096-byte sectors, and XFS refuses to mount a 512-byte-sector
	// filesystem there (ENOSYS).
	dev, err := pool.Attach(ctx, img)
	if err != nil {
		return "", "", err
	}
	e.cleanup.Push("detach "+dev, func(ctx context.Context) error { return pool.Detach(ctx, dev) })
	if err := os.MkdirAll(c.Mount, 0o755); err != nil {
		return "", "", err
	}
	mount := c.Mount
	e.cleanup.Push("unmount "+mount, func(ctx context.Context) error { return pool.Unmount(ctx, mount) })
	// hostagent clone leaves the server running detached: stop it by PID
	// (found by its datadir, so a clone killed midway is covered too).
	e.cleanup.Push("stop the clone on "+mount, func(context.Context) error { return stopServersUnder(mount) })
	run := c.Mount + ".run"
	if err := mysqlOwned(run); err != nil {
		return "", "", fmt.Errorf("clone run dir: %w", err)
	}
	port, err := mariadb.FreePort()
	if err != nil {
		return "", "", err
	}
	sock = filepath.Join(run, "mysqld.sock")
	opts := []string{"socket=" + sock, "port=" + strconv.Itoa(port), "bind-address=127.0.0.1", "pid-file=" + filepath.Join(run, "mysqld.pid"),
		"log-error=" + filepath.Join(run, "error.log"), "tmpdir=" + run, "log-bin=" + BinlogBase, "log-slave-updates=1",
		"binlog-format=ROW", "sync-binlog=1", "innodb-flush-log-at-trx-commit=1", "innodb-buffer-pool-size=32M", "skip-name-resolve"}
	cnf = c.Mount + ".cnf"
	body := "[client]\nuser=root\nsocket=" + sock + "\n[mysqld]\n" + strings.Join(opts, "\n") + "\n"
	return cnf, sock, os.WriteFile(cnf, []byte(body), 0o600)
}

func stopServersUnder(dir string) error {
	var errs []error
	for _, pid := range mariadbdUnder(dir) {
		if err := stopPID(pid, 60*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop the servers on %s: %v", dir, errs)
	}
	return nil
}

// waitLagZero waits until m has applied everything the primary has written
// now and reports Seconds_Behind_Master 0.
func (e *ReplicaEnv) waitLagZero(ctx context.Context, m *mariadb.Server, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := e.waitCaughtUp(ctx, m); err != nil {
		return err
	}
	r := &mariadb.Replication{Primaries: []*mariadb.Server{e.Primary}, Connections: []string{""}, Replica: m}
	for {
		st, err := r.SlaveStatus(ctx, "")
		if err == nil && st["Seconds_Behind_Master"] == "0" && st["Slave_SQL_Running"] == "Yes" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lag not 0 within %s (Seconds_Behind_Master %q, IO %q, SQL %q, %q %q): %w", limit,
				st["Seconds_Behind_Master"], st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"], ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitCaughtUp waits until m has applied the primary's current GTID state.
func (e *ReplicaEnv) waitCaughtUp(ctx context.Context, m *mariadb.Server) error {
	r := &mariadb.Replication{Primaries: []*mariadb.Server{e.Primary}, Connections: []string{""}, Replica: m}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Opt.CatchUp)
		defer cancel()
	}
	return r.WaitCaughtUp(ctx)
}

func (e *ReplicaEnv) primaryGTID(ctx context.Context) string {
	g, err := e.Primary.GTIDBinlogPos(ctx)
	if err != nil {
		return "?"
	}
	return g
}

// ServerState is one server's bank checksums and GTID position with the
// writer paused and everything applied.
type ServerState struct {
	Name      string
	GTID      string            // primary: @@gtid_binlog_pos; replicas: @@gtid_slave_pos
	Checksums map[string]string // CHECKSUM TABLE, by table
}

// bankTables are the tables whose CHECKSUM TABLE is compared.
var bankTables = []string{"bank.accounts", "bank.transfer_seq", "bank.transfers", "bank.bank_meta"}

// readState reads m's checksums and GTID position.
func readState(ctx context.Context, name string, m *mariadb.Server, primary bool) (ServerState, error) {
	st := ServerState{Name: name, Checksums: map[string]string{}}
	db, err := m.DB()
	if err != nil {
		return st, err
	}
	defer db.Close()
	q := "SELECT @@GLOBAL.gtid_slave_pos"
	if primary {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	if err := db.QueryRowContext(ctx, q).Scan(&st.GTID); err != nil {
		return st, fmt.Errorf("%s: %s: %w", name, q, err)
	}
	for _, t := range bankTables {
		var table string
		var sum sql.NullString
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+t).Scan(&table, &sum); err != nil {
			return st, fmt.Errorf("%s: CHECKSUM TABLE %s: %w", name, t, err)
		}
		st.Checksums[t] = sum.String
	}
	return st, nil
}
