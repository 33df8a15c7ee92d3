// Package harness runs the demo and the benchmark end to end on one machine:
// a reflink XFS pool holding the "EBS volume" image, MariaDB on that volume
// with the bank schema and a writer, the local EC2/SSM stand-in running the
// real SSM document and hostagent, and the real Lambda bootstrap under the
// Runtime Interface Emulator. Every resource it creates lives under the work
// directory and is released by Env.Close in reverse order, with bounded waits.
package harness

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/demo/standin"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
	"github.com/quiesce/quiesce/test/rie"
)

// Layout inside the data volume and the MariaDB options shared by the
// original server and every restored one.
const (
	DataSubdir = "db"     // datadir inside the volume
	BinlogBase = "binlog" // relative: the index then names ./binlog.N, so a copy's index points into the copy
	Stack      = "quiesce-demo"
	markerFile = ".quiesce-demo"
	// DefaultStateDir is hostagent's state directory for the demo's runs in
	// the default work dir ($QUIESCE_STATE_DIR, tmpfs like /run/quiesce): the
	// demo's many runs stay out of the operator's /run/quiesce and are removed
	// when the demo ends. Other work dirs get their own (StateDirFor).
	DefaultStateDir = "/run/quiesce-demo"
	// VerifierTag is the demo instance's quiesce:role: it verifies its own snapshots.
	VerifierTag = "verifier"
	// verifyTmp (in the work dir) is hostagent verify's TMPDIR.
	verifyTmp = "verify-tmp"
	// checkSQLName (in the work dir) is demo/bank-checks.sql for --check-sql.
	checkSQLName = "bank-checks.sql"
)

// TuningArgs are the durability settings of a production primary, shared by
// the original server and every restored one.
var TuningArgs = []string{"--binlog-format=ROW", "--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1"}

// ServerArgs start the original server: binary log on the data volume.
var ServerArgs = append([]string{"--log-bin=" + BinlogBase, "--server-id=1"}, TuningArgs...)

// Config configures the environment.
type Config struct {
	WorkDir    string // all images and mounts live here (default /var/tmp/quiesce-demo)
	BinDir     string // holds hostagent and bootstrap (default: next to the running binary)
	Writers    int    // writer connections (default 4)
	PoolSize   int64  // pool image size (sparse; default 8 GiB)
	VolumeSize int64  // data volume size (sparse; default 2 GiB)
	NoRIE      bool   // use the built-in Runtime API instead of aws-lambda-rie
	// WarmLambda keeps one function container for every cycle (the Lambda
	// then spaces snapshots of the volume 15 s apart, as EC2 requires).
	WarmLambda    bool
	FreezeTimeout string    // hostagent --timeout via the Lambda event (default 30s)
	Out           io.Writer // progress lines
	Verbose       bool      // copy the Lambda's logs to Out
}

// Env is a running demo environment.
type Env struct {
	Cfg     Config
	cleanup pool.Cleanup
	// StateDir is hostagent's state dir for this demo (StateDirFor the work dir).
	StateDir     string
	Pool         *pool.Pool
	Vol          *pool.Volume
	DB           *mariadb.Server
	SQL          *sql.DB
	DefaultsFile string
	// GTIDBase is the GTID sequence number after the schema load (bank_meta
	// gtid_seq): every later transaction is one transfer.
	GTIDBase uint64
	// CheckSQLFile is demo/bank-checks.sql on the "verifier" (this machine).
	CheckSQLFile string
	Version      string // SELECT VERSION()

	Writer  *bank.Writer
	running *runningWriter

	AWS        *awslocal.Server
	Hooks      *standin.Hooks
	AWSURL     string
	InstanceID string
	Lambda     *rie.Function
	rieBin     string
}

// Tool is an external program the demo needs and the package that has it.
type Tool struct{ Name, Package string }

// Tools are checked before anything is created.
var Tools = []Tool{
	{"mkfs.xfs", "xfsprogs"}, {"xfs_freeze", "xfsprogs"}, {"losetup", "mount"}, {"mount", "mount"}, {"umount", "mount"},
	{"mariadbd", "mariadb-server"}, {"mariadb-install-db", "mariadb-server"}, {"mariadb", "mariadb-client"},
	{"mariadb-binlog", "mariadb-client"}, {"bash", "bash"}, {"cp", "coreutils"},
}

// Preflight checks root, tools and the built binaries; one error naming everything missing.
func Preflight(binDir string) error { return preflight(binDir, "hostagent", "bootstrap") }

// preflight is Preflight for the binaries named.
func preflight(binDir string, binaries ...string) error {
	var missing []string
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root (loop devices, mount, FIFREEZE, mariadbd --user=mysql); running as uid %d", os.Geteuid())
	}
	for _, t := range Tools {
		if _, err := exec.LookPath(t.Name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t.Name, t.Package))
		}
	}
	if why := mariadb.Unavailable(); why != "" {
		missing = append(missing, why)
	}
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(binDir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s/%s (run make build)", binDir, b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s; scripts/install-deps.sh installs the tools", strings.Join(missing, ", "))
	}
	return nil
}

// CheckWorkDir refuses directories the demo must never take over.
func CheckWorkDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("-workdir %q: need a clean absolute path", dir)
	}
	for _, bad := range []string{"/", "/tmp", "/var/tmp", "/var", "/run", "/work", "/root", "/home", "/usr", "/etc", "/var/lib", "/var/lib/mysql"} {
		if dir == bad {
			return fmt.Errorf("-workdir %q: refusing a system directory; use a directory of its own such as /var/tmp/quiesce-demo", dir)
		}
	}
	if strings.ContainsAny(dir, " \t\n,") {
		return fmt.Errorf("-workdir %q: no spaces or commas (the mount path travels as an SSM parameter)", dir)
	}
	return nil
}

// prepareWorkDir makes dir ours: empty or a previous demo's (marker file),
// nothing mounted below it. A previous run's files are removed.
func prepareWorkDir(dir string) error {
	if err := CheckWorkDir(dir); err != nil {
		return err
	}
	if ms := pool.MountsUnder(dir); len(ms) > 0 {
		return fmt.Errorf("%s is in use (%s mounted): another demo is running, or one was killed; run `demo clean -workdir %s`", dir, ms[0], dir)
	}
	if loops := pool.LoopsBackedBy(dir); len(loops) > 0 {
		return fmt.Errorf("%s is in use (%s attached): run `demo clean -workdir %s`", dir, loops[0], dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("workdir: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
			return fmt.Errorf("workdir %s is not empty and was not made by the demo (no %s); choose another -workdir", dir, markerFile)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove previous run's %s: %w", e.Name(), err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// mariadbd runs as mysql and must traverse to the datadir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, markerFile), []byte("made by quiesce demo; `demo clean` releases it\n"), 0o644)
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func (c *Config) defaults() error {
	if c.WorkDir == "" {
		c.WorkDir = "/var/tmp/quiesce-demo"
	}
	if c.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		c.BinDir = filepath.Dir(exe)
	}
	if abs, err := filepath.Abs(c.BinDir); err == nil {
		c.BinDir = abs
	}
	if c.Writers <= 0 {
		c.Writers = 4
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 8 << 30
	}
	if c.VolumeSize <= 0 {
		c.VolumeSize = 2 << 30
	}
	if c.FreezeTimeout == "" {
		c.FreezeTimeout = "30s"
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.Cfg.Out, format+"\n", args...)
}

// Setup builds the environment. On error everything made so far is released.
func Setup(ctx context.Context, cfg Config) (env *Env, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := Preflight(cfg.BinDir); err != nil {
		return nil, err
	}
	if err := prepareWorkDir(cfg.WorkDir); err != nil {
		return nil, err
	}
	e := &Env{Cfg: cfg, StateDir: StateDirFor(cfg.WorkDir)}
	defer func() {
		if err != nil {
			if cerr := e.Close(context.WithoutCancel(ctx)); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	t0 := time.Now()
	if e.Pool, err = pool.NewPool(ctx, &e.cleanup, cfg.WorkDir, cfg.PoolSize); err != nil {
		return e, err
	}
	volID := "vol-0de30" + randHex(12)
	if e.Vol, err = pool.NewVolume(ctx, &e.cleanup, e.Pool, volID, filepath.Join(cfg.WorkDir, "data"), cfg.VolumeSize); err != nil {
		return e, err
	}
	e.logf("pool     %s (XFS reflink=1 on %s) holds %s.img (XFS on %s, mounted at %s)", e.Pool.Dir, e.Pool.Dev, volID, e.Vol.Dev, e.Vol.Dir)

	e.DB, err = mariadb.Start(mariadb.Options{
		DataDir: filepath.Join(e.Vol.Dir, DataSubdir), TCP: true, ExtraArgs: ServerArgs, StartTimeout: time.Minute,
	})
	if err != nil {
		return e, fmt.Errorf("start mariadbd: %w", err)
	}
	db := e.DB
	e.cleanup.Push("stop mariadbd", func(context.Context) error { return db.Stop() })
	e.cleanup.Push("remove hostagent state", func(ctx context.Context) error { return removeStateDir(ctx, e.Cfg.BinDir, e.StateDir) })
	// Runs before the server is stopped (LIFO): a frozen datadir would hang its shutdown.
	e.cleanup.Push("thaw leftovers", func(ctx context.Context) error { return e.thawAll(ctx) })
	if e.SQL, err = e.DB.DB(); err != nil {
		return e, err
	}
	e.SQL.SetMaxOpenConns(64 + 4)
	e.SQL.SetMaxIdleConns(16)
	sqlDB := e.SQL
	e.cleanup.Push("close sql pool", func(context.Context) error { return sqlDB.Close() })
	if err := e.SQL.QueryRowContext(ctx, "SELECT VERSION()").Scan(&e.Version); err != nil {
		return e, err
	}
	e.logf("mariadb  %s pid %d, datadir %s, socket %s, port %d, binlog on the same volume", e.Version, e.DB.PID, e.DB.DataDir, e.DB.Socket, e.DB.Port)

	// hostagent reaches MariaDB through a defaults file, as on EC2 (no password on argv).
	e.DefaultsFile = filepath.Join(cfg.WorkDir, "my.cnf")
	if err := os.WriteFile(e.DefaultsFile, []byte("[client]\nuser=root\nsocket="+e.DB.Socket+"\n"), 0o600); err != nil {
		return e, err
	}

	if err := bank.Load(ctx, e.SQL, demodata.BankSQL); err != nil {
		return e, err
	}
	if err := e.loadGTIDBase(ctx); err != nil {
		return e, err
	}
	if err := e.writeVerifyFiles(); err != nil {
		return e, err
	}

	if err := e.startStandIn(ctx); err != nil {
		return e, err
	}
	if err := e.startLambda(ctx); err != nil {
		return e, err
	}
	e.logf("setup    %s", time.Since(t0).Round(time.Millisecond))
	return e, nil
}

// loadGTIDBase reads the GTID sequence number the schema load ended with
// (bank_meta gtid_seq) and checks it against the server's.
func (e *Env) loadGTIDBase(ctx context.Context) error {
	var gtid string
	if err := e.SQL.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		return err
	}
	if err := e.SQL.QueryRowContext(ctx, "SELECT v FROM bank.bank_meta WHERE k = 'gtid_seq'").Scan(&e.GTIDBase); err != nil {
		return fmt.Errorf("read bank_meta gtid_seq: %w", err)
	}
	if seq, ok := gtidSeq(gtid); !ok || seq != e.GTIDBase {
		return fmt.Errorf("bank_meta gtid_seq %d is not the server's GTID position %q after the load", e.GTIDBase, gtid)
	}
	e.logf("bank     1000 accounts, total 1000000000, transfers log gap-free (GTID after load %s)", gtid)
	return nil
}

// writeVerifyFiles puts the check SQL where the verify document's checkSql
// parameter points, and makes hostagent verify's TMPDIR.
func (e *Env) writeVerifyFiles() error {
	e.CheckSQLFile = filepath.Join(e.Cfg.WorkDir, checkSQLName)
	if err := os.WriteFile(e.CheckSQLFile, []byte(demodata.BankChecksSQL), 0o644); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(e.Cfg.WorkDir, verifyTmp), 0o755)
}

// StartWriter starts the transfer writer with that many connections; StopWriter ends it.
func (e *Env) StartWriter(workers int) {
	e.Writer = &bank.Writer{DB: e.SQL, Workers: workers}
	e.running = startWriter(e.Writer)
	e.cleanup.Push("stop writer", func(ctx context.Context) error { return e.StopWriter(ctx) })
}

// StopWriter stops the writer and waits (bounded) for its goroutines.
func (e *Env) StopWriter(ctx context.Context) error { return e.running.stop(ctx) }

// runningWriter is a bank.Writer running in a goroutine of its own.
type runningWriter struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startWriter runs w until stop.
func startWriter(w *bank.Writer) *runningWriter {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWriter{cancel: cancel, done: make(chan struct{})}
	go func() { w.Run(ctx); close(r.done) }()
	return r
}

// stop ends the writer and waits (bounded) for its connections; nil (never
// started) and a second stop are no-ops.
func (r *runningWriter) stop(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("writer did not stop: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		return errors.New("writer did not stop within 30s")
	}
}

func (e *Env) startStandIn(ctx context.Context) error {
	hooks, err := standin.NewHooks(e.Cfg.BinDir, e.Pool.Dir)
	if err != nil {
		return err
	}
	e.Hooks = hooks
	// TMPDIR: hostagent verify's private work dir (mounts, the throwaway
	// server's socket) lives under the demo's work dir, where `demo clean` looks.
	hooks.Env = []string{"QUIESCE_STATE_DIR=" + e.StateDir, "TMPDIR=" + filepath.Join(e.Cfg.WorkDir, verifyTmp)}
	e.AWS = awslocal.New()
	hooks.Install(e.AWS)
	e.InstanceID = "i-0de30" + randHex(12)
	// The demo machine is the database instance and its own verifier.
	e.AWS.AddInstance(standin.DemoInstance(e.InstanceID, e.Vol.ID, map[string]string{"quiesce:role": VerifierTag}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: e.AWS, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	e.AWSURL = "http://" + ln.Addr().String()
	aws := e.AWS
	e.cleanup.Push("stop stand-in", func(ctx context.Context) error {
		err := hs.Shutdown(ctx)
		aws.Close()
		return err
	})
	e.logf("aws      stand-in (in-process) on %s: EC2 + SSM, SendCommand runs the real Quiesce and QuiesceVerify documents with %s/hostagent, CreateSnapshot(s) = FICLONE in the pool,\n"+
		"         CreateVolume = FICLONE of the snapshot (vol-….img), AttachVolume = loop device, DetachVolume refused while mounted; instance %s (%s + root volume, also tagged quiesce:role=%s),\n"+
		"         snapshots and volumes are ready at once and EC2's snapshot rate limits (15 s per volume, ≤5 pending) are not enforced",
		e.AWSURL, e.Cfg.BinDir, e.InstanceID, e.Vol.ID, VerifierTag)
	return nil
}

// LambdaEnv is the function's environment: endpoints pointed at the stand-in.
func (e *Env) LambdaEnv() []string {
	return []string{
		"AWS_ENDPOINT_URL_EC2=" + e.AWSURL, "AWS_ENDPOINT_URL_SSM=" + e.AWSURL,
		"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDDEMO", "AWS_SECRET_ACCESS_KEY=demo-secret", "AWS_SESSION_TOKEN=",
		"AWS_EC2_METADATA_DISABLED=true",
		"QUIESCE_DOCUMENT=" + standin.DefaultDocumentName, "QUIESCE_STACK=" + Stack,
		"QUIESCE_TARGET_TAG_KEY=quiesce:enabled", "QUIESCE_TARGET_TAG_VALUE=true",
		"QUIESCE_MOUNTS=" + e.Vol.Dir, "QUIESCE_MYSQL_LOCK=auto", "QUIESCE_MYSQL_DEFAULTS_FILE=" + e.DefaultsFile,
		"QUIESCE_FREEZE_TIMEOUT=" + e.Cfg.FreezeTimeout, "QUIESCE_KEEP_LAST=1000", "QUIESCE_MAX_CONCURRENCY=1",
		"QUIESCE_VERIFY_DOCUMENT=" + standin.DefaultVerifyDocumentName, "QUIESCE_VERIFIER_TAG_VALUE=" + VerifierTag,
		// The stand-in's volumes are ready at once: look every 200 ms, not every 10 s.
		"QUIESCE_VERIFY_POLL=200ms",
	}
}

func (e *Env) startLambda(ctx context.Context) error {
	if !e.Cfg.NoRIE {
		e.rieBin = rie.Find()
		if e.rieBin == "" {
			e.logf("WARNING  aws-lambda-rie not found (scripts/install-deps.sh installs it): running bin/bootstrap under the demo's built-in Lambda Runtime API instead")
		}
	}
	if err := e.launchLambda(ctx); err != nil {
		return err
	}
	e.cleanup.Push("stop lambda", func(context.Context) error { return e.Lambda.Stop() })
	if e.Lambda.Mode == rie.ModeRIE {
		e.logf("lambda   real bootstrap under %s (invoked over HTTP), %s", e.rieBin, e.containerPolicy())
	} else {
		e.logf("lambda   real bootstrap under the built-in Runtime API (NOT aws-lambda-rie), %s", e.containerPolicy())
	}
	return nil
}

func (e *Env) containerPolicy() string {
	if e.Cfg.WarmLambda {
		return "one warm container for all cycles"
	}
	return "a fresh container per cycle"
}

func (e *Env) launchLambda(ctx context.Context) error {
	var logTo io.Writer
	if e.Cfg.Verbose {
		logTo = prefixWriter{w: e.Cfg.Out, prefix: "lambda   "}
	}
	env := append(os.Environ(), e.LambdaEnv()...)
	env = append(env, "AWS_LAMBDA_FUNCTION_NAME=quiesce-demo", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "LOG_LEVEL=warn")
	l, err := rie.Start(ctx, rie.Config{Bootstrap: filepath.Join(e.Cfg.BinDir, "bootstrap"), RIE: e.rieBin, Env: env, LogTo: logTo, Timeout: 2 * time.Minute})
	if err != nil {
		return err
	}
	e.Lambda = l
	return nil
}

// ColdLambda replaces the function's container with a fresh one, as a
// scheduled Lambda often gets. A warm container paces snapshots of one
// volume 15 s apart (EC2's rule, remembered in memory); a fresh one learns
// the spacing only from pending snapshots (DescribeSnapshots), and the
// stand-in's complete at once, so demo cycles can run seconds apart.
// -warm-lambda keeps one container instead.
func (e *Env) ColdLambda(ctx context.Context) error {
	if e.Cfg.WarmLambda {
		return nil
	}
	if err := e.Lambda.Stop(); err != nil {
		return err
	}
	return e.launchLambda(ctx)
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintln(p.w, p.prefix+line)
	}
	return len(b), nil
}

// Hostagent runs bin/hostagent with args and returns stdout, exit code.
func (e *Env) Hostagent(ctx context.Context, args ...string) ([]byte, int, error) {
	return runHostagent(ctx, e.Cfg.BinDir, e.StateDir, 2*time.Minute, args...)
}

// runHostagent runs binDir/hostagent on stateDir, bounded by limit, and
// returns its stdout and exit code (-1 if it did not run); a non-zero exit is
// an error carrying its stderr.
func runHostagent(ctx context.Context, binDir, stateDir string, limit time.Duration, args ...string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "hostagent"), args...)
	cmd.Env = append(os.Environ(), "QUIESCE_STATE_DIR="+stateDir)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode(), fmt.Errorf("hostagent %s: exit %d: %s", strings.Join(args, " "), ee.ExitCode(), strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return out, -1, fmt.Errorf("hostagent %s: %w", strings.Join(args, " "), err)
	}
	return out, 0, nil
}

// thawAll releases anything hostagent still holds on our data mount, then
// FITHAWs it directly (idempotent), so nothing can stay frozen after the demo.
func (e *Env) thawAll(ctx context.Context) error {
	var mounts []string
	if e.Vol != nil {
		mounts = []string{e.Vol.Dir}
	}
	return thawRunsOn(ctx, e.Cfg.BinDir, e.StateDir, mounts)
}

// thawRunsOn thaws every held hostagent run of the demo's state dir that
// holds one of mounts, then FITHAWs the mounts themselves (idempotent).
func thawRunsOn(ctx context.Context, binDir, stateDir string, mounts []string) error {
	_, err := thawHeld(ctx, binDir, stateDir, 2*time.Minute, func(held []string) bool { return overlaps(held, mounts) })
	if _, serr := os.Stat(stateDir); isStatusError(err) && serr != nil {
		err = nil // no state dir: nothing hostagent could hold
	}
	errs := []error{err}
	for _, m := range mounts {
		if _, err := fsfreeze.Thaw(m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// statusError is `hostagent status` failing or not answering JSON.
type statusError struct{ err error }

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// isStatusError reports whether err is, or wraps, a statusError.
func isStatusError(err error) bool {
	var se *statusError
	return errors.As(err, &se)
}

// hostagentStatus runs `hostagent status` on stateDir, bounded by limit.
func hostagentStatus(ctx context.Context, binDir, stateDir string, limit time.Duration) (contract.StatusReport, error) {
	var st contract.StatusReport
	out, _, err := runHostagent(ctx, binDir, stateDir, limit, "status")
	if err != nil {
		return st, &statusError{err}
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, &statusError{fmt.Errorf("hostagent status: %w", err)}
	}
	return st, nil
}

// thawHeld thaws every run hostagent reports held in stateDir whose mounts
// holding picks, each call bounded by limit, and returns the runs thawed (a
// run the deadline thawed first, exit 4, counts). A failed status is a
// statusError.
func thawHeld(ctx context.Context, binDir, stateDir string, limit time.Duration, holding func(mounts []string) bool) (thawed []string, err error) {
	st, err := hostagentStatus(ctx, binDir, stateDir, limit)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, r := range st.Runs {
		if r.State != "held" || !holding(r.Mounts) {
			continue
		}
		if _, code, err := runHostagent(ctx, binDir, stateDir, limit, "thaw", "--run-id", r.RunID); err != nil && contract.ExitCode(code) != contract.ExitLate {
			errs = append(errs, err)
		} else {
			thawed = append(thawed, r.RunID)
		}
	}
	return thawed, errors.Join(errs...)
}

// StateDirFor is the hostagent state directory of the demo in workdir: one
// per work dir, so demos and tests running at the same time never share (or
// remove) each other's runs and verify journals.
func StateDirFor(workdir string) string {
	if workdir == "/var/tmp/quiesce-demo" {
		return DefaultStateDir
	}
	h := sha256.Sum256([]byte(workdir))
	return DefaultStateDir + "-" + hex.EncodeToString(h[:6])
}

// removeStateDir deletes a demo's hostagent state directory once hostagent
// says nothing is held there (finished runs only leave reports and logs).
func removeStateDir(ctx context.Context, binDir, stateDir string) error {
	if _, err := os.Stat(stateDir); err != nil {
		return nil
	}
	// A holder and guardian exit a moment after their thaw: wait for them (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy, err := stateBusy(ctx, binDir, stateDir)
		if err != nil {
			return err
		}
		if busy == "" {
			return os.RemoveAll(stateDir)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("keeping %s: %s", stateDir, busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stateBusy describes a run in the demo's state dir that is held or still
// has a live holder/guardian ("" when none).
func stateBusy(ctx context.Context, binDir, stateDir string) (string, error) {
	st, err := hostagentStatus(ctx, binDir, stateDir, 2*time.Minute)
	if err != nil {
		return "", fmt.Errorf("before removing %s: %w", stateDir, err)
	}
	for _, r := range st.Runs {
		if r.State == "held" || r.HolderAlive || r.GuardAlive {
			return fmt.Sprintf("run %s is %s (holder alive %v, guardian alive %v)", r.RunID, r.State, r.HolderAlive, r.GuardAlive), nil
		}
	}
	return "", nil
}

func containsMount(list []string, m string) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// Close thaws anything still frozen, then releases everything in reverse
// order (Lambda, stand-in, writer, thaw again, mariadbd, mounts, loop
// devices), each step bounded.
func (e *Env) Close(ctx context.Context) error {
	var first error
	if e.Vol != nil {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		first = e.thawAll(tctx)
		cancel()
	}
	return errors.Join(first, e.cleanup.Run(ctx, 90*time.Second))
}
