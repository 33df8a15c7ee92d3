// Package contract holds what hostagent and the Lambda must agree on, in
// one place both binaries import (docs/architecture.md#wire-contract): the
// JSON reports hostagent prints on stdout and the Lambda parses from the SSM
// command output, the exit codes and the errors behind them, the lock modes,
// the SSM document's parameters and the freeze request they carry, the tag
// keys and values of snapshots and of the volumes verify and clone create,
// and the limits both sides check. JSON field names, tag keys and parameter names
// are wire format: extend, never rename.
package contract

import (
	"strings"
	"time"
)

// Lock modes accepted by --mysql-lock.
const (
	LockAuto        = "auto"
	LockFTWRL       = "ftwrl"
	LockBackupStage = "backup-stage"
	LockInstance    = "instance"
	// LockReplica stops only the applier of a read-only replica; hostagent
	// takes it only when asked explicitly: auto never picks it
	// (docs/architecture.md#replicas says why).
	LockReplica = "replica"
	LockNone    = "none"
)

// LockModes are the --mysql-lock values the SSM document accepts (its
// mysqlLock allowedValues, in the same order; ssmdoc's tests compare them)
// and so the ones the Lambda lets an event or an instance tag ask for.
func LockModes() []string {
	return []string{LockAuto, LockFTWRL, LockBackupStage, LockInstance, LockReplica, LockNone}
}

// Who thawed a run.
const (
	ThawedByCommand  = "command"
	ThawedByDeadline = "deadline"
	ThawedByRecovery = "recovery"
)

// FreezeReport is printed by `hostagent freeze` once everything is held.
type FreezeReport struct {
	RunID       string        `json:"run_id"`
	Hostname    string        `json:"hostname"`
	InstanceID  string        `json:"instance_id,omitempty"`
	StartedAt   time.Time     `json:"started_at"`
	FrozenAt    time.Time     `json:"frozen_at"`
	Deadline    time.Time     `json:"deadline"`
	TimeoutMS   int64         `json:"timeout_ms"`
	Lock        LockInfo      `json:"lock"`
	Mounts      []MountReport `json:"mounts"`
	HolderPID   int           `json:"holder_pid"`
	GuardianPID int           `json:"guardian_pid"`
	// HeldMS is the time from the command's start until everything was held.
	HeldMS float64 `json:"held_ms"`
	// TimerUnit is the systemd transient timer armed as a third fail-safe layer, if any.
	TimerUnit string `json:"timer_unit,omitempty"`
	// FailsafeLayers names what will end this hold if nobody sends thaw:
	// "guardian", "systemd-timer", "next-invocation".
	FailsafeLayers []string `json:"failsafe_layers,omitempty"`
}

// LockInfo describes the MySQL lock taken (mode "none" when no database is involved).
type LockInfo struct {
	Mode          string  `json:"mode"`
	Requested     string  `json:"requested,omitempty"`
	AcquiredMS    float64 `json:"acquired_ms"`
	BinlogFile    string  `json:"binlog_file,omitempty"`
	BinlogPos     uint64  `json:"binlog_pos,omitempty"`
	GTIDExecuted  string  `json:"gtid_executed,omitempty"`
	ServerVersion string  `json:"server_version,omitempty"`
	ConnectionID  uint64  `json:"connection_id,omitempty"`
	// KilledQueries are the server thread ids whose statements were killed
	// (--kill-long-queries) because they ran longer than --long-query-limit.
	KilledQueries []uint64 `json:"killed_queries,omitempty"`
	// Restore holds the server settings a restored copy must start with
	// (read at freeze time); nil when no server was locked.
	Restore *RestoreInfo `json:"restore,omitempty"`
	// Replication is the replica's position per channel, read under the
	// lock; nil when the server is not a replica.
	Replication *Replication `json:"replication,omitempty"`
}

// RestoreInfo is what `hostagent verify` (and a clone) needs to start a
// server on a snapshot's volumes with the source's settings. Paths are the
// source server's absolute ones; RelativeTo maps them onto a volume.
type RestoreInfo struct {
	DataDir             string `json:"datadir"`
	LogBinBasename      string `json:"log_bin_basename,omitempty"`
	InnoDBPageSize      uint64 `json:"innodb_page_size,omitempty"`
	LowerCaseTableNames *int   `json:"lower_case_table_names,omitempty"`
	// Set only when they differ from the server's defaults.
	InnoDBDataFilePath    string `json:"innodb_data_file_path,omitempty"`
	InnoDBLogGroupHomeDir string `json:"innodb_log_group_home_dir,omitempty"`
}

// RelativeTo returns the mount among mounts that holds path (the longest
// prefix) and path relative to it, e.g. for --datadir-relative; ok is false
// when no mount holds it.
func RelativeTo(mounts []MountReport, path string) (mount MountReport, rel string, ok bool) {
	best := -1
	for i, m := range mounts {
		p := strings.TrimSuffix(m.Path, "/")
		if (path == p || strings.HasPrefix(path, p+"/") || p == "") && (best < 0 || len(p) > len(mounts[best].Path)) {
			best = i
		}
	}
	if best < 0 {
		return MountReport{}, "", false
	}
	rel = strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(mounts[best].Path, "/")), "/")
	if rel == "" {
		rel = "."
	}
	return mounts[best], rel, true
}

// MountReport describes one frozen mount.
type MountReport struct {
	Path      string   `json:"path"`
	FSType    string   `json:"fstype"`
	Device    string   `json:"device"`
	VolumeIDs []string `json:"volume_ids"`
	FreezeMS  float64  `json:"freeze_ms"`
	// EC2Devices are the EC2 device names (e.g. /dev/sdf) of Xen disks, from the
	// IMDS block-device-mapping, which carries no volume ids: map them with
	// DescribeInstances' BlockDeviceMappings. Empty on Nitro (NVMe serials give ids).
	EC2Devices []string `json:"ec2_devices,omitempty"`
}

// ThawReport is printed by `hostagent thaw`.
type ThawReport struct {
	RunID         string      `json:"run_id"`
	ThawedBy      string      `json:"thawed_by"`
	HeldMS        float64     `json:"held_ms"`
	Mounts        []MountThaw `json:"mounts"`
	MySQLUnlocked bool        `json:"mysql_unlocked"`
	Late          bool        `json:"late"`
	ThawedAt      time.Time   `json:"thawed_at"`
	// LockLost is set when the MySQL lock ended before the thaw (its connection
	// was killed, or the server went away): writes may have gone through
	// during the hold, so the snapshot is not application-consistent.
	LockLost *LockLoss `json:"lock_lost,omitempty"`
}

// LockLoss says when and why the MySQL lock was lost during a hold.
type LockLoss struct {
	At      time.Time `json:"at"`
	AfterMS float64   `json:"after_ms"` // since the lock was taken
	Reason  string    `json:"reason"`
}

// MountThaw is the outcome of thawing one mount.
type MountThaw struct {
	Path   string `json:"path"`
	Thawed bool   `json:"thawed"`
	Error  string `json:"error,omitempty"`
}

// StatusReport is printed by `hostagent status`.
type StatusReport struct {
	Runs []RunStatus `json:"runs"`
}

// RunStatus describes one run known to the state directory.
type RunStatus struct {
	RunID       string    `json:"run_id"`
	State       string    `json:"state"` // held | thawed
	Mounts      []string  `json:"mounts"`
	LockMode    string    `json:"lock_mode"`
	FrozenAt    time.Time `json:"frozen_at"`
	Deadline    time.Time `json:"deadline"`
	HolderPID   int       `json:"holder_pid"`
	GuardianPID int       `json:"guardian_pid"`
	HolderAlive bool      `json:"holder_alive"`
	GuardAlive  bool      `json:"guardian_alive"`
	ThawedBy    string    `json:"thawed_by,omitempty"`
	// LockLost: the MySQL lock of this run ended before its thaw (see ThawReport.LockLost).
	LockLost *LockLoss `json:"lock_lost,omitempty"`
	// ThawPending lists mounts whose thaw did not return (blocked in the
	// kernel); the run stays active and every fail-safe layer retries them.
	ThawPending []string `json:"thaw_pending,omitempty"`
}

// CheckReport is printed by `hostagent check` (preflight only, changes nothing).
type CheckReport struct {
	OK     bool          `json:"ok"`
	Mounts []MountReport `json:"mounts"`
	Lock   LockInfo      `json:"lock"`
	// Problems lists every preflight failure, one line each.
	Problems []string `json:"problems,omitempty"`
	// FailsafeLayers names what would end a hold on this host if nobody sent
	// thaw, as FreezeReport.FailsafeLayers would for a freeze now: without
	// systemd only "guardian" and "next-invocation" (a killed guardian then
	// leaves no timer, only the next hostagent invocation).
	FailsafeLayers []string `json:"failsafe_layers,omitempty"`
}

// ErrorReport is printed on stdout (as well as the one-line message on stderr)
// when a command fails, so the caller always gets one JSON object to parse.
type ErrorReport struct {
	RunID    string   `json:"run_id,omitempty"`
	Error    string   `json:"error"`
	ExitCode ExitCode `json:"exit_code"`
}
