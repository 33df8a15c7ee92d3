package harness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// ReplicaOptions configure `demo replica`.
type ReplicaOptions struct {
	WorkDir string // default /var/tmp/quiesce-replica
	BinDir  string // holds hostagent (default: next to the running binary)
	Writers int    // writer connections on the primary (default 4)
	// CatchUp is how long the replica and the clones have to catch up after
	// the writer pauses, and the clone after it starts (default 2m).
	CatchUp time.Duration
	// BenchCycles, if > 0, also runs that many snapshot cycles of the replica
	// per lock mode (replica, ftwrl, backup-stage) under the writer's load.
	BenchCycles int
	// GoBench is the `go test -bench` output whose BenchmarkReplicaModes
	// lines the report quotes ("" or missing: none).
	GoBench string
	// ReportFile, if set, gets the markdown section appended.
	ReportFile string
	Out        io.Writer

	// beforeClone, if set, runs just before each `hostagent clone` (tests
	// break a clone with it).
	beforeClone func(*ReplicaEnv)
}

func (o *ReplicaOptions) defaults() error {
	c := Config{WorkDir: o.WorkDir, BinDir: o.BinDir}
	if c.WorkDir == "" {
		c.WorkDir = "/var/tmp/quiesce-replica"
	}
	if err := c.defaults(); err != nil {
		return err
	}
	o.WorkDir, o.BinDir = c.WorkDir, c.BinDir
	if o.Writers <= 0 {
		o.Writers = 4
	}
	if o.CatchUp <= 0 {
		o.CatchUp = 2 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// Server ids of the demo's topology: the primary, its replica, and the
// clones made from a snapshot of the replica and of the primary.
const (
	primaryServerID      = 1
	replicaServerID      = 2
	replicaCloneServerID = 3
	primaryCloneServerID = 4
	replUser             = "repl"
)

// ReplicaEnv is a primary and a replica, each mariadbd on its own loop XFS
// volume in the reflink pool, GTID replication over 127.0.0.1, and the
// bank writer on the primary.
type ReplicaEnv struct {
	Opt        ReplicaOptions
	cleanup    pool.Cleanup
	Pool       *pool.Pool
	PrimaryVol *pool.Volume
	ReplicaVol *pool.Volume
	Primary    *mariadb.Server
	Replica    *mariadb.Server
	PrimarySQL *sql.DB
	ReplicaSQL *sql.DB
	// ReplicaDefaults/PrimaryDefaults are hostagent's [client] files;
	// ReplDefaults holds the replication account for `hostagent clone`.
	ReplicaDefaults, PrimaryDefaults, ReplDefaults string
	replPassword                                   string
	Version                                        string

	Writers []*bank.Writer // one per writer phase, in order
	running *runningWriter // the phase running now, nil while paused
}

func (e *ReplicaEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.Opt.Out, format+"\n", args...)
}

// SetupReplica builds the pool, both volumes and servers, loads the bank on
// the primary and waits until the replica has it. On error everything made
// so far is released.
func SetupReplica(ctx context.Context, o ReplicaOptions) (env *ReplicaEnv, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	// The replica demo drives hostagent itself: no Lambda bootstrap needed.
	if err := preflight(o.BinDir, "hostagent"); err != nil {
		return nil, err
	}
	if err := prepareWorkDir(o.WorkDir); err != nil {
		return nil, err
	}
	e := &ReplicaEnv{Opt: o, replPassword: randHex(16)}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close(context.WithoutCancel(ctx)))
		}
	}()
	t0 := time.Now()
	if e.Pool, err = pool.NewPool(ctx, &e.cleanup, o.WorkDir, 8<<30); err != nil {
		return e, err
	}
	e.PrimaryVol, err = pool.NewVolume(ctx, &e.cleanup, e.Pool, "vol-0a1"+randHex(14), filepath.Join(o.WorkDir, "primary"), 2<<30)
	if err != nil {
		return e, err
	}
	e.ReplicaVol, err = pool.NewVolume(ctx, &e.cleanup, e.Pool, "vol-0b2"+randHex(14), filepath.Join(o.WorkDir, "replica"), 2<<30)
	if err != nil {
		return e, err
	}
	e.logf("pool     %s (XFS reflink=1): primary %s.img at %s, replica %s.img at %s (each XFS on its own loop device)",
		e.Pool.Dir, e.PrimaryVol.ID, e.PrimaryVol.Dir, e.ReplicaVol.ID, e.ReplicaVol.Dir)
	if err := e.startPrimary(ctx); err != nil {
		return e, err
	}
	if err := e.startReplica(ctx); err != nil {
		return e, err
	}
	if err := bank.Load(ctx, e.PrimarySQL, demodata.BankSQL); err != nil {
		return e, fmt.Errorf("load the bank on the primary: %w", err)
	}
	if err := e.waitCaughtUp(ctx, e.Replica); err != nil {
		return e, err
	}
	e.logf("bank     1000 accounts loaded on the primary and replicated (GTID %s)", e.primaryGTID(ctx))
	e.logf("setup    %s", time.Since(t0).Round(time.Millisecond))
	return e, nil
}

func (e *ReplicaEnv) startPrimary(ctx context.Context) error {
	args := append([]string{"--log-bin=" + BinlogBase, "--server-id=" + strconv.Itoa(primaryServerID)}, TuningArgs...)
	p, err := mariadb.Start(mariadb.Options{DataDir: filepath.Join(e.PrimaryVol.Dir, DataSubdir), TCP: true, ExtraArgs: args, StartTimeout: time.Minute})
	if err != nil {
		return fmt.Errorf("start the primary: %w", err)
	}
	e.Primary = p
	e.cleanup.Push("stop the primary", func(context.Context) error { return p.Stop() })
	if e.PrimarySQL, err = e.openPool(p, 4*e.Opt.Writers+8); err != nil {
		return err
	}
	if err := e.PrimarySQL.QueryRowContext(ctx, "SELECT VERSION()").Scan(&e.Version); err != nil {
		return err
	}
	for _, s := range []string{
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", replUser, e.replPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO '%s'@'127.0.0.1'", replUser),
	} {
		if _, err := e.PrimarySQL.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("primary: create the replication account: %w", err)
		}
	}
	if e.PrimaryDefaults, err = writeClientDefaults(e.Opt.WorkDir, "primary.cnf", p.Socket); err != nil {
		return err
	}
	e.ReplDefaults = filepath.Join(e.Opt.WorkDir, "replication.cnf")
	if err := os.WriteFile(e.ReplDefaults, []byte("[quiesce-replication]\nuser="+replUser+"\npassword="+e.replPassword+"\n"), 0o600); err != nil {
		return err
	}
	repl := e.ReplDefaults
	e.cleanup.Push("remove "+repl, func(context.Context) error { return os.Remove(repl) })
	e.logf("primary  %s pid %d, datadir %s, port %d, binlog on its volume, server_id %d", e.Version, p.PID, p.DataDir, p.Port, primaryServerID)
	return nil
}

func (e *ReplicaEnv) startReplica(ctx context.Context) error {
	args := append([]string{"--log-bin=" + BinlogBase, "--server-id=" + strconv.Itoa(replicaServerID),
		"--log-slave-updates=1", "--read-only=1"}, TuningArgs...)
	r, err := mariadb.Start(mariadb.Options{DataDir: filepath.Join(e.ReplicaVol.Dir, DataSubdir), TCP: true, ExtraArgs: args, StartTimeout: time.Minute})
	if err != nil {
		return fmt.Errorf("start the replica: %w", err)
	}
	e.Replica = r
	e.cleanup.Push("stop the replica", func(context.Context) error { return r.Stop() })
	// Thaw before the servers stop (LIFO): a frozen datadir hangs a shutdown.
	e.cleanup.Push("remove hostagent state", func(ctx context.Context) error { return removeStateDir(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir)) })
	e.cleanup.Push("thaw leftovers", func(ctx context.Context) error { return e.thawAll(ctx) })
	if e.ReplicaSQL, err = e.openPool(r, 8); err != nil {
		return err
	}
	if err := pointAt(ctx, e.ReplicaSQL, e.Primary.Port, e.replPassword); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if e.ReplicaDefaults, err = writeClientDefaults(e.Opt.WorkDir, "replica.cnf", r.Socket); err != nil {
		return err
	}
	e.logf("replica  pid %d, datadir %s, port %d, read_only, log_slave_updates, server_id %d, GTID replication (slave_pos) from 127.0.0.1:%d",
		r.PID, r.DataDir, r.Port, replicaServerID, e.Primary.Port)
	return nil
}

// pointAt makes db a GTID replica of the primary on 127.0.0.1:port.
func pointAt(ctx context.Context, db *sql.DB, port int, password string) error {
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		port, replUser, password)
	if _, err := db.ExecContext(ctx, change); err != nil {
		return errors.New("CHANGE MASTER failed: " + err.Error())
	}
	if _, err := db.ExecContext(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("START SLAVE: %w", err)
	}
	return nil
}

func (e *ReplicaEnv) openPool(m *mariadb.Server, conns int) (*sql.DB, error) {
	db, err := m.DB()
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	e.cleanup.Push("close sql pool", func(context.Context) error { return db.Close() })
	return db, nil
}

func writeClientDefaults(dir, name, socket string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte("[client]\nuser=root\nsocket="+socket+"\n"), 0o600)
}

// StartWriter starts a writer phase on the primary; StopWriter pauses it.
// A phase still running (a step failed before its pause) is paused first.
func (e *ReplicaEnv) StartWriter() {
	_ = e.StopWriter(context.Background())
	w := &bank.Writer{DB: e.PrimarySQL, Workers: e.Opt.Writers}
	e.Writers = append(e.Writers, w)
	e.running = startWriter(w)
}

// StopWriter pauses the writer and waits (bounded) for its connections.
func (e *ReplicaEnv) StopWriter(ctx context.Context) error {
	r := e.running
	e.running = nil
	return r.stop(ctx)
}

// AllCommits are every writer phase's commits.
func (e *ReplicaEnv) AllCommits() []bank.Commit {
	var all []bank.Commit
	for _, w := range e.Writers {
		all = append(all, w.Commits()...)
	}
	return all
}

// thawAll releases any hostagent run still holding one of our volumes.
func (e *ReplicaEnv) thawAll(ctx context.Context) error {
	var mounts []string
	for _, v := range []*pool.Volume{e.PrimaryVol, e.ReplicaVol} {
		if v != nil {
			mounts = append(mounts, v.Dir)
		}
	}
	return thawRunsOn(ctx, e.Opt.BinDir, StateDirFor(e.Opt.WorkDir), mounts)
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if containsMount(b, x) {
			return true
		}
	}
	return false
}

// Close pauses the writer, thaws, and releases everything in reverse order
// (clones, servers by PID, mounts, loop devices), each step bounded.
func (e *ReplicaEnv) Close(ctx context.Context) error {
	err := e.StopWriter(ctx)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = errors.Join(err, e.thawAll(tctx))
	cancel()
	return errors.Join(err, e.cleanup.Run(ctx, 90*time.Second))
}

// mysqlOwned makes dir (created if missing) owned by the mysql user, for a
// clone server's socket, pid file and error log.
func mysqlOwned(dir string) error {
	u, err := user.Lookup("mysql")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, uid, gid)
}
