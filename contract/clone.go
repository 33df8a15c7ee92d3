package contract

// CloneReport is printed by `hostagent clone`: a snapshot set, restored onto
// volumes attached to a target instance, mounted at the source's mount
// points, started as a server of its own identity and made a replica of the
// source the set's tags name. OK is false exactly when Problems is not empty
// (exit 6 when replication does not start; 1, 2, 3 as for every command).
// On success the volumes stay mounted and the server runs (LeftRunning); on
// any failure everything clone did is undone.
type CloneReport struct {
	OK      bool     `json:"ok"`
	RunID   string   `json:"run_id,omitempty"`
	Volumes []string `json:"volumes"`
	// Mounts are the mount points, paired with Volumes in order.
	Mounts []string `json:"mounts"`
	// DataDir is the datadir found on the mounted volumes (absolute).
	DataDir    string `json:"datadir,omitempty"`
	SourceHost string `json:"source_host"`
	SourcePort int    `json:"source_port"`
	// Coordinates are where replication was told to start.
	Coordinates CloneCoordinates `json:"coordinates"`
	// Removed are the files removed from the datadir before the server
	// started: the source's identity (auto.cnf) and its old replication
	// state (master.info, relay-log.info, ...).
	Removed       []string `json:"removed"`
	ServerVersion string   `json:"server_version,omitempty"`
	// ServerID is the clone's @@server_id once it runs.
	ServerID uint32 `json:"server_id,omitempty"`
	ReadOnly bool   `json:"read_only"`
	// Replica is the clone's replication status when clone stopped waiting:
	// thread states, seconds behind, the last errors as the server reports
	// them. nil when replication was never configured.
	Replica *ReplicaChannel `json:"replica,omitempty"`
	// LeftRunning is true when the clone is mounted and its server runs
	// after the command (success); false when everything was undone.
	LeftRunning bool `json:"left_running"`
	// Notes are facts an operator should know that are not failures (a
	// server_id set at run time only, say).
	Notes      []string `json:"notes"`
	Problems   []string `json:"problems"`
	DurationMS float64  `json:"duration_ms"`
	// TimingsMS splits DurationMS by step (find_devices, mount, start,
	// configure, replicating, undo).
	TimingsMS map[string]float64 `json:"timings_ms,omitempty"`
}

// Values of CloneCoordinates.Mode.
const (
	CloneByGTID    = "gtid"
	CloneByFilePos = "file-pos"
)

// CloneCoordinates are the source's coordinates the clone replicates from:
// a GTID state (MariaDB gtid_slave_pos; MySQL uses auto-position from the
// clone's own gtid_executed), or a binary log file and position.
type CloneCoordinates struct {
	Mode    string `json:"mode"`
	GTID    string `json:"gtid,omitempty"`
	LogFile string `json:"log_file,omitempty"`
	LogPos  uint64 `json:"log_pos,omitempty"`
}
