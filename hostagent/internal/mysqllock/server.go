package mysqllock

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// serverInfo is what SELECT VERSION() and a few variables tell us.
type serverInfo struct {
	Version             string // as reported, e.g. 10.11.19-MariaDB-0+deb12u1-log
	MariaDB             bool
	Major, Minor, Patch int
	LogBin              bool
	// FlushLogAtCommit is innodb_flush_log_at_trx_commit; anything but 1
	// means committed transactions may sit in the server's redo buffer.
	FlushLogAtCommit int64
	// DelayKeyWriteAll: delay_key_write=ALL keeps every MyISAM table's index
	// blocks in server memory until the table is closed; only FTWRL closes them.
	DelayKeyWriteAll bool
}

func parseVersion(v string) serverInfo {
	si := serverInfo{Version: v, MariaDB: strings.Contains(strings.ToLower(v), "mariadb")}
	num := v
	if i := strings.IndexFunc(num, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); i >= 0 {
		num = num[:i]
	}
	parts := strings.SplitN(num, ".", 3)
	nums := []*int{&si.Major, &si.Minor, &si.Patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		*nums[i] = n
	}
	return si
}

func (si serverInfo) atLeast(major, minor int) bool {
	return si.Major > major || (si.Major == major && si.Minor >= minor)
}

func (si serverInfo) product() string {
	if si.MariaDB {
		return "MariaDB"
	}
	return "MySQL"
}

func (si serverInfo) short() string {
	return fmt.Sprintf("%s %d.%d.%d", si.product(), si.Major, si.Minor, si.Patch)
}

// concreteMode turns the requested mode into the lock to take on this server,
// or a usage error when the server cannot do it. See the package doc for why
// `auto` picks what it picks.
func (si serverInfo) concreteMode(requested string) (string, error) {
	switch requested {
	case contract.LockAuto:
		if si.MariaDB && si.atLeast(10, 4) && !si.DelayKeyWriteAll {
			return contract.LockBackupStage, nil
		}
		return contract.LockFTWRL, nil
	case contract.LockBackupStage:
		if !si.MariaDB || !si.atLeast(10, 4) {
			return "", agenterr.Usagef("--mysql-lock backup-stage needs MariaDB 10.4 or later; server is %s (use ftwrl)", si.short())
		}
	case contract.LockReplica:
		if !si.MariaDB && !si.atLeast(5, 7) {
			return "", agenterr.Usagef("--mysql-lock replica needs MySQL 5.7 or later (replication channels); server is %s", si.short())
		}
	case contract.LockInstance:
		if si.MariaDB || !si.atLeast(8, 0) {
			return "", agenterr.Usagef("--mysql-lock instance (LOCK INSTANCE FOR BACKUP) needs MySQL 8.0 or later; server is %s (use ftwrl or backup-stage)", si.short())
		}
	}
	return requested, nil
}

// lockStatements are run in order to lock; unlock undoes them.
func lockStatements(mode string) []string {
	switch mode {
	case contract.LockFTWRL:
		return []string{"FLUSH TABLES WITH READ LOCK"}
	case contract.LockBackupStage:
		// BLOCK_COMMIT runs the skipped FLUSH and BLOCK_DDL stages itself.
		return []string{"BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"}
	case contract.LockInstance:
		return []string{"LOCK INSTANCE FOR BACKUP"}
	}
	return nil
}

func unlockStatement(mode string) string {
	switch mode {
	case contract.LockFTWRL:
		return "UNLOCK TABLES"
	case contract.LockBackupStage:
		return "BACKUP STAGE END"
	case contract.LockInstance:
		return "UNLOCK INSTANCE"
	}
	return ""
}

// requiredPrivileges lists, per need, the global privileges any one of which
// satisfies it (newer servers split SUPER into finer privileges).
func (si serverInfo) requiredPrivileges(mode string, o Options) map[string][]string {
	need := map[string][]string{}
	switch mode {
	case contract.LockFTWRL, contract.LockBackupStage:
		need[mode] = []string{"RELOAD"}
	case contract.LockInstance:
		need[mode] = []string{"BACKUP_ADMIN"}
	case contract.LockReplica:
		need[mode+" (stop and start the applier)"] = []string{"REPLICATION SLAVE ADMIN", "REPLICATION_SLAVE_ADMIN", "SUPER"}
		need[mode+" (replica status)"] = []string{"SLAVE MONITOR", "REPLICA MONITOR", "REPLICATION CLIENT", "SUPER"}
	}
	if si.LogBin {
		need["binlog position"] = []string{"BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"}
		if mode == contract.LockInstance {
			need["binlog position"] = []string{"BACKUP_ADMIN"}
		}
	}
	if o.LongQueryLimit > 0 {
		need["--long-query-limit (see every thread)"] = []string{"PROCESS"}
	}
	if o.KillLongQueries {
		need["--kill-long-queries"] = []string{"CONNECTION ADMIN", "CONNECTION_ADMIN", "SUPER"}
	}
	if si.FlushLogAtCommit != 1 {
		need["flush InnoDB redo under the lock"] = []string{"RELOAD"}
	}
	return need
}
