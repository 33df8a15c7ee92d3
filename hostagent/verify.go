package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Verify bounds.
const (
	defaultVerifyTimeout = 2 * time.Hour
	minVerifyTimeout     = time.Second
	maxVerifyTimeout     = contract.MaxVerifyHours * time.Hour
	// cleanupBound is how long undoing a verify may take after a timeout or
	// a signal: a clean server shutdown and the unmounts.
	cleanupBound = 5 * time.Minute
)

// verifyInput is the validated command line of `hostagent verify`.
type verifyInput struct {
	volumes                []string
	binlogFile             string
	binlogPos              uint64
	expectBinlog           bool
	gtid                   string
	expectGTID             bool
	checks                 []string
	mysqld                 string
	operatorOptions        []string
	timeout, deviceWait    time.Duration
	runID, stateDir, under string
	datadirRel, binlogBase string
	logGroupHomeRel        string
	settings               []string
}

func (c *command) verify(ctx context.Context, args []string) error {
	in, err := c.parseVerify(args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) { // the caller parses one report type, whatever happened
			c.printJSON(contract.VerifyReport{RunID: in.runID, Volumes: in.volumes, TablesFailed: []contract.TableFailure{},
				Checks: []contract.SQLCheck{}, Problems: []string{oneLine(err.Error())}})
		}
		return err
	}
	c.runID = in.runID
	ctx, stop := boundedRun(ctx, in.timeout)
	defer stop()

	v := newVerifier(in, c)
	runErr := v.run(ctx)
	rep := v.finish(runErr)
	c.printJSON(rep)
	if runErr != nil {
		return runErr
	}
	if !rep.OK {
		return fmt.Errorf("%w: %s", agenterr.ErrVerifyFailed, strings.Join(rep.Problems, "; "))
	}
	return nil
}

func (c *command) parseVerify(args []string) (verifyInput, error) {
	var in verifyInput
	fs := c.flagSet()
	var vols stringList
	fs.Var(&vols, "volume", "EBS volume id of the set, attached here (repeat for several)")
	fs.StringVar(&in.binlogFile, "expect-binlog-file", "", "binlog file tagged at freeze time (with --expect-binlog-pos)")
	pos := fs.String("expect-binlog-pos", "", "binlog position tagged at freeze time: the file's size must equal it")
	fs.StringVar(&in.gtid, "expect-gtid", "", "GTID state tagged at freeze time (MariaDB gtid_binlog_pos, MySQL gtid_executed)")
	checkSQL := fs.String("check-sql", "", "file of statements (each ending with ';' at a line's end) that must each return one true row")
	fs.StringVar(&in.mysqld, "mysqld", "", "server binary (default: mariadbd or mysqld from PATH)")
	optFile := fs.String("mysqld-options-file", "", "my.cnf-style file whose [mysqld]/[mariadbd]/[server] options the server gets")
	fs.DurationVar(&in.timeout, "timeout", defaultVerifyTimeout, "give up (exit 1) after this; everything is undone")
	fs.DurationVar(&in.deviceWait, "device-wait", 30*time.Second, "wait this long for a volume's block device to appear")
	fs.StringVar(&in.runID, "run-id", "", "run id (default: generated)")
	fs.StringVar(&in.stateDir, "state-dir", "", stateDirHelp)
	fs.StringVar(&in.under, "work-dir", "", "parent of the private directory holding mounts and the server's socket (default $TMPDIR or /tmp)")
	fs.StringVar(&in.datadirRel, "datadir-relative", "", "datadir relative to its volume's root (default: the one datadir found)")
	fs.StringVar(&in.binlogBase, "binlog-basename", "", "the source's log_bin_basename relative to its volume's root (default: the binlog index in the datadir)")
	pageSize := fs.String("innodb-page-size", "", "the source's innodb_page_size")
	lowerCase := fs.String("lower-case-table-names", "", "the source's lower_case_table_names (0, 1 or 2)")
	dataFilePath := fs.String("innodb-data-file-path", "", "the source's innodb_data_file_path, if not the default")
	fs.StringVar(&in.logGroupHomeRel, "innodb-log-group-home-dir", "", "the source's innodb_log_group_home_dir relative to its volume's root, if not the datadir")
	if err := c.parse(fs, args); err != nil {
		return in, err
	}
	in.volumes = vols
	in.expectGTID = isSet(fs, "expect-gtid")
	if err := in.validate(*pos, *checkSQL, *optFile); err != nil {
		return in, err
	}
	if err := in.serverSettings(*pageSize, *lowerCase, *dataFilePath); err != nil {
		return in, err
	}
	if in.runID == "" {
		in.runID = "verify-" + newRunID(time.Now().UTC())
	}
	return in, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func (in *verifyInput) validate(pos, checkSQL, optFile string) error {
	if len(in.volumes) == 0 {
		return agenterr.Usagef("no --volume given (the EBS volume ids of the set, attached to this instance)")
	}
	seen := map[string]bool{}
	for _, v := range in.volumes {
		if !restore.ValidVolumeID(v) {
			return agenterr.Usagef("--volume %q: want an EBS volume id like vol-0123456789abcdef0", v)
		}
		if seen[v] {
			return agenterr.Usagef("--volume %s given twice", v)
		}
		seen[v] = true
	}
	if err := in.validateBinlog(pos); err != nil {
		return err
	}
	if in.runID != "" {
		if err := validRunID(in.runID); err != nil {
			return err
		}
	}
	if in.timeout < minVerifyTimeout || in.timeout > maxVerifyTimeout {
		return agenterr.Usagef("--timeout %s: must be between %s and %s", in.timeout, minVerifyTimeout, maxVerifyTimeout)
	}
	if in.deviceWait < 0 {
		return agenterr.Usagef("--device-wait %s: must not be negative", in.deviceWait)
	}
	for flagName, p := range map[string]string{"--datadir-relative": in.datadirRel, "--innodb-log-group-home-dir": in.logGroupHomeRel,
		"--binlog-basename": in.binlogBase} {
		if p == "" {
			continue
		}
		if _, err := restore.CleanRelative(p); err != nil {
			return agenterr.Usagef("%s %v", flagName, err)
		}
	}
	if err := in.readChecks(checkSQL); err != nil {
		return err
	}
	if err := in.readOptions(optFile); err != nil {
		return err
	}
	return in.findServerBinary()
}

func (in *verifyInput) validateBinlog(pos string) error {
	if (in.binlogFile == "") != (pos == "") {
		return agenterr.Usagef("--expect-binlog-file and --expect-binlog-pos go together (got file %q, pos %q)", in.binlogFile, pos)
	}
	if in.binlogFile == "" {
		return nil
	}
	if !restore.ValidBinlogFile(in.binlogFile) {
		return agenterr.Usagef("--expect-binlog-file %q: want a binlog file name like binlog.000042", in.binlogFile)
	}
	n, err := strconv.ParseUint(pos, 10, 64)
	if err != nil || n < 4 {
		return agenterr.Usagef("--expect-binlog-pos %q: want a byte position (a number of at least 4)", pos)
	}
	in.binlogPos, in.expectBinlog = n, true
	return nil
}

func (in *verifyInput) readChecks(path string) error {
	if path == "" {
		return nil
	}
	stmts, err := readFlagFile("--check-sql", path, restore.SplitStatements)
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		return agenterr.Usagef("--check-sql %q: no statements in it", path)
	}
	in.checks = stmts
	return nil
}

func (in *verifyInput) readOptions(path string) error {
	if path == "" {
		return nil
	}
	opts, err := readFlagFile("--mysqld-options-file", path, restore.ParseOptionFile)
	if err != nil {
		return err
	}
	in.operatorOptions = opts
	return nil
}

// readFlagFile opens the file a flag names and parses it; either failing is
// a usage error naming the flag and the path.
func readFlagFile(flag, path string, parse func(io.Reader) ([]string, error)) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, agenterr.Usagef("%s %q: %v", flag, path, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return nil, agenterr.Usagef("%s %q: %v", flag, path, err)
	}
	return v, nil
}

// serverBinaryDirs are searched after PATH: a non-login root shell often lacks sbin.
var serverBinaryDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/bin"}

func (in *verifyInput) findServerBinary() error {
	if in.mysqld != "" {
		st, err := os.Stat(in.mysqld)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return agenterr.Usagef("--mysqld %q: not an executable file", in.mysqld)
		}
		return nil
	}
	for _, name := range []string{"mariadbd", "mysqld"} {
		if p, err := exec.LookPath(name); err == nil {
			in.mysqld = p
			return nil
		}
		for _, dir := range serverBinaryDirs {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				in.mysqld = p
				return nil
			}
		}
	}
	return agenterr.Usagef("no mariadbd or mysqld on PATH or in %s; name one with --mysqld", strings.Join(serverBinaryDirs, ", "))
}

// serverSettings turns the source's recorded settings into server options.
func (in *verifyInput) serverSettings(pageSize, lowerCase, dataFilePath string) error {
	if pageSize != "" {
		switch pageSize {
		case "4096", "8192", "16384", "32768", "65536":
			in.settings = append(in.settings, "--innodb-page-size="+pageSize)
		default:
			return agenterr.Usagef("--innodb-page-size %q: want 4096, 8192, 16384, 32768 or 65536", pageSize)
		}
	}
	if lowerCase != "" {
		if lowerCase != "0" && lowerCase != "1" && lowerCase != "2" {
			return agenterr.Usagef("--lower-case-table-names %q: want 0, 1 or 2", lowerCase)
		}
		in.settings = append(in.settings, "--lower-case-table-names="+lowerCase)
	}
	if dataFilePath != "" {
		if strings.ContainsAny(dataFilePath, " \t\n/") {
			return agenterr.Usagef("--innodb-data-file-path %q: want file specs like ibdata1:12M:autoextend", dataFilePath)
		}
		in.settings = append(in.settings, "--innodb-data-file-path="+dataFilePath)
	}
	return nil
}

// registryDir is where verify keeps its volume locks and journals.
func registryDir(stateDir string) string {
	return filepath.Join(state.Resolve(stateDir), "restore")
}

// classify maps the machinery's errors to hostagent's exit codes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, restore.ErrBusy), errors.Is(err, restore.ErrInUse):
		return fmt.Errorf("%w: %w", agenterr.ErrBusy, err)
	case errors.Is(err, restore.ErrNotAttached), errors.Is(err, restore.ErrUnsupported),
		errors.Is(err, restore.ErrAmbiguous), errors.Is(err, restore.ErrBadPath):
		return fmt.Errorf("%w: %w", agenterr.ErrUsage, err)
	}
	return err
}

// boundedRun is the context of a verify or clone: cancelled by SIGTERM or
// SIGINT, and at timeout, each with its cause, so that the run undoes what it
// did and says why it stopped.
func boundedRun(ctx context.Context, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("interrupted by %v", s))
		case <-ctx.Done():
		}
	}()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s reached", timeout))
	return ctx, func() {
		cancelTimeout()
		signal.Stop(sigs)
		cancel(nil)
	}
}
