package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/mysqllock"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Clone bounds.
const (
	defaultCloneTimeout = 30 * time.Minute
	// defaultReplicationGroup is the option-file group holding the replication
	// account's user and password on the target.
	defaultReplicationGroup = "quiesce-replication"
)

// cloneInput is the validated command line of `hostagent clone`.
type cloneInput struct {
	setInput
	mounts            []string
	sourceHost        string
	sourcePort        int
	replDefaults      string
	replGroup         string
	creds             mysqllock.Credentials
	coords            contract.CloneCoordinates
	startCmd, stopCmd string
	client            mysqllock.Options // how to reach the clone's server
	serverOptions     []string          // the built-in start's: the defaults file's server groups
	serverID          uint32
	avoidIDs          []uint32 // server ids the clone must not have
}

func (c *command) clone(ctx context.Context, args []string) error {
	in, err := c.parseClone(args)
	if err != nil {
		rep := newCloneReport(in)
		rep.Problems = append(rep.Problems, oneLine(err.Error()))
		return c.refused(err, rep)
	}
	cl := newCloner(in, c)
	return c.runReported(ctx, in.setInput, cl.run, func(runErr error) (any, []string) {
		rep := cl.finish(runErr)
		return rep, rep.Problems
	})
}

func newCloneReport(in cloneInput) contract.CloneReport {
	return contract.CloneReport{RunID: in.runID, Volumes: nonNil(in.volumes), Mounts: nonNil(in.mounts),
		SourceHost: in.sourceHost, SourcePort: in.sourcePort, Coordinates: in.coords,
		Removed: []string{}, Notes: []string{}, Problems: []string{}, TimingsMS: map[string]float64{}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *command) parseClone(args []string) (cloneInput, error) {
	in := cloneInput{}
	fs := c.flagSet()
	var vols, mounts, avoid stringList
	fs.Var(&vols, "volume", "EBS volume id of the set, attached here (repeat; paired in order with --mount)")
	fs.Var(&mounts, "mount", "where to mount the --volume of the same position: the source's mount point")
	fs.StringVar(&in.sourceHost, "source-host", "", "the replication source's host (the snapshot's primary, or a replica's own source)")
	fs.IntVar(&in.sourcePort, "source-port", 3306, "the replication source's port")
	fs.StringVar(&in.replDefaults, "replication-defaults-file", "", "option file whose [quiesce-replication] group has the replication user and password")
	fs.StringVar(&in.replGroup, "replication-group", defaultReplicationGroup, "the option-file group of --replication-defaults-file to read")
	fs.StringVar(&in.coords.GTID, "source-gtid", "", "the source's GTID state to start from (MariaDB gtid_slave_pos; MySQL: auto-position)")
	fs.StringVar(&in.coords.LogFile, "source-log-file", "", "the source's binlog file to start from (with --source-log-pos)")
	pos := fs.String("source-log-pos", "", "the source's binlog position to start from")
	fs.StringVar(&in.startCmd, "start-command", "", "shell command that starts the target's own server on the mounted datadir (e.g. systemctl start mariadb)")
	fs.StringVar(&in.stopCmd, "stop-command", "", "shell command that stops it again if the clone fails (with --start-command)")
	fs.StringVar(&in.mysqld, "mysqld", "", "server binary for the built-in start (default: mariadbd or mysqld from PATH)")
	fs.StringVar(&in.client.DefaultsFile, "mysql-defaults-file", "", "option file: its [client] group reaches the clone's server; the built-in start gives the server the file itself (--defaults-file)")
	fs.StringVar(&in.client.Socket, "mysql-socket", "", "the clone's server socket (overrides the defaults file)")
	fs.StringVar(&in.client.User, "mysql-user", "", "user on the clone's server (default root via unix-socket auth)")
	id := fs.String("server-id", "", "the clone's server_id (built-in start: an option; --start-command: SET GLOBAL)")
	fs.Var(&avoid, "source-server-id", "a server_id the clone must not have: the snapshotted server's, its source's (repeat)")
	fs.DurationVar(&in.timeout, "timeout", defaultCloneTimeout, "give up after this; everything is undone (exit 6 when replication had not started)")
	in.addFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return in, err
	}
	in.volumes, in.mounts = vols, mounts
	if in.runID == "" {
		in.runID = "clone-" + newRunID(time.Now().UTC())
	}
	if err := in.validate(*pos, *id, avoid); err != nil {
		return in, err
	}
	return in, nil
}

// hostPattern: a DNS name, an IPv4 or an IPv6 address.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,252}[A-Za-z0-9])?$`)

func (in *cloneInput) validate(pos, id string, avoid []string) error {
	if err := in.setInput.validate(); err != nil {
		return err
	}
	if err := in.validateMounts(); err != nil {
		return err
	}
	if !hostPattern.MatchString(in.sourceHost) {
		return agenterr.Usagef("--source-host %s: want a host name or address", agenterr.Quote(in.sourceHost))
	}
	if in.sourcePort < 1 || in.sourcePort > 65535 {
		return agenterr.Usagef("--source-port %d: want 1-65535", in.sourcePort)
	}
	if err := in.validateCoordinates(pos); err != nil {
		return err
	}
	if err := in.validateServerIDs(id, avoid); err != nil {
		return err
	}
	if in.replDefaults == "" {
		return agenterr.Usagef("no --replication-defaults-file given (an option file with a [%s] group holding user and password)", in.replGroup)
	}
	creds, err := mysqllock.ReadCredentials(in.replDefaults, in.replGroup)
	if err != nil {
		return agenterr.Usagef("--replication-defaults-file: %v", err)
	}
	in.creds = creds
	if (in.startCmd == "") != (in.stopCmd == "") {
		return agenterr.Usagef("--start-command and --stop-command go together (a clone that fails must be stopped again)")
	}
	if in.startCmd != "" {
		return nil
	}
	opts, err := readFlagFile("--mysql-defaults-file", in.client.DefaultsFile, restore.ParseOptionFile)
	if err != nil {
		return err
	}
	in.serverOptions = opts
	return in.findServerBinary()
}

// validateMounts checks there is one mount point a volume, each clean and
// absolute. In use or not empty is checked when mounting, after the stale
// cleanup: a killed run's mount there is undone first.
func (in *cloneInput) validateMounts() error {
	if len(in.mounts) != len(in.volumes) {
		return agenterr.Usagef("%d --volume and %d --mount given: each volume needs its mount point, in the same order", len(in.volumes), len(in.mounts))
	}
	for _, m := range in.mounts {
		if !filepath.IsAbs(m) || filepath.Clean(m) != m || m == "/" {
			return agenterr.Usagef("--mount %s: want a clean absolute path other than /", agenterr.Quote(m))
		}
	}
	return nil
}

func (in *cloneInput) validateCoordinates(pos string) error {
	filePos := in.coords.LogFile != "" || pos != ""
	switch {
	case in.coords.GTID != "" && filePos:
		return agenterr.Usagef("--source-gtid and --source-log-file/--source-log-pos exclude each other: give one")
	case in.coords.GTID != "":
		if strings.ContainsAny(in.coords.GTID, "'\"\\;`") {
			return agenterr.Usagef("--source-gtid %s: not a GTID state", agenterr.Quote(in.coords.GTID))
		}
		in.coords.Mode = contract.CloneByGTID
		return nil
	case !filePos:
		return agenterr.Usagef("no coordinates: give --source-gtid, or --source-log-file with --source-log-pos")
	}
	if !restore.ValidBinlogFile(in.coords.LogFile) {
		return agenterr.Usagef("--source-log-file %s: want a binlog file name like binlog.000042", agenterr.Quote(in.coords.LogFile))
	}
	n, err := strconv.ParseUint(pos, 10, 64)
	if err != nil || n < 4 {
		return agenterr.Usagef("--source-log-pos %s: want a byte position (a number of at least 4)", agenterr.Quote(pos))
	}
	in.coords.LogPos, in.coords.Mode = n, contract.CloneByFilePos
	return nil
}

func parseServerID(flagName, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return 0, agenterr.Usagef("%s %s: want a server_id of 1-4294967295", flagName, agenterr.Quote(v))
	}
	return uint32(n), nil
}

func (in *cloneInput) validateServerIDs(id string, avoid []string) error {
	for _, a := range avoid {
		n, err := parseServerID("--source-server-id", a)
		if err != nil {
			return err
		}
		in.avoidIDs = append(in.avoidIDs, n)
	}
	if id == "" {
		return nil
	}
	n, err := parseServerID("--server-id", id)
	if err != nil {
		return err
	}
	for _, a := range in.avoidIDs {
		if a == n {
			return agenterr.Usagef("--server-id %d is the source's (--source-server-id): a replica needs a server_id of its own", n)
		}
	}
	in.serverID = n
	return nil
}
