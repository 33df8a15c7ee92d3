package main

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
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
	setInput
	binlogFile      string
	binlogPos       uint64
	expectBinlog    bool
	gtid            string
	expectGTID      bool
	checks          []string
	operatorOptions []string
	under           string
	binlogBase      string
	logGroupHomeRel string
	settings        []string
}

func (c *command) verify(ctx context.Context, args []string) error {
	in, err := c.parseVerify(args)
	if err != nil {
		return c.refused(err, contract.VerifyReport{RunID: in.runID, Volumes: in.volumes, TablesFailed: []contract.TableFailure{},
			Checks: []contract.SQLCheck{}, Problems: []string{oneLine(err.Error())}})
	}
	v := newVerifier(in, c)
	return c.runReported(ctx, in.setInput, v.run, func(runErr error) (any, []string) {
		rep := v.finish(runErr)
		return rep, rep.Problems
	})
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
	in.addFlags(fs)
	fs.StringVar(&in.under, "work-dir", "", "parent of the private directory holding mounts and the server's socket (default $TMPDIR or /tmp)")
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
	if err := in.setInput.validate(); err != nil {
		return err
	}
	if err := in.validateBinlog(pos); err != nil {
		return err
	}
	for flagName, p := range map[string]string{"--innodb-log-group-home-dir": in.logGroupHomeRel, "--binlog-basename": in.binlogBase} {
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
	opts, err := readFlagFile("--mysqld-options-file", optFile, restore.ParseOptionFile)
	if err != nil {
		return err
	}
	in.operatorOptions = opts
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
	stmts, err := readFlagFile("--check-sql", path, restore.SplitStatements)
	if err != nil {
		return err
	}
	if path != "" && len(stmts) == 0 {
		return agenterr.Usagef("--check-sql %s: no statements in it", agenterr.Quote(path))
	}
	in.checks = stmts
	return nil
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
