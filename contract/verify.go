package contract

// VerifyReport is printed by `hostagent verify`: whether a snapshot set, restored
// onto volumes attached to a verifier instance, starts a server that passes
// every check. OK is false exactly when Problems is not empty (exit 6).
type VerifyReport struct {
	OK            bool     `json:"ok"`
	RunID         string   `json:"run_id,omitempty"`
	Volumes       []string `json:"volumes"`
	ServerVersion string   `json:"server_version,omitempty"`
	// StartMS is how long the throwaway server took from exec to accepting
	// connections on its private socket (crash recovery included).
	StartMS       float64        `json:"start_ms"`
	Recovery      Recovery       `json:"recovery"`
	TablesChecked int            `json:"tables_checked"`
	TablesFailed  []TableFailure `json:"tables_failed"`
	Binlog        *BinlogCheck   `json:"binlog,omitempty"`
	GTID          *GTIDCheck     `json:"gtid,omitempty"`
	Checks        []SQLCheck     `json:"checks"`
	Problems      []string       `json:"problems"`
	DurationMS    float64        `json:"duration_ms"`
	// DataDir is the datadir found on the restored volumes, relative to its
	// volume's root (what --datadir-relative names).
	DataDir string `json:"datadir,omitempty"`
	// TimingsMS splits DurationMS by step (find_devices, mount, binlog,
	// start, check_tables, gtid, checks, shutdown, unmount, ...): what is
	// not start, check_tables or shutdown is hostagent's own overhead.
	TimingsMS map[string]float64 `json:"timings_ms,omitempty"`
}

// Recovery is what InnoDB said about crash recovery while the server started.
type Recovery struct {
	// Ran is true when InnoDB applied redo or rolled back transactions.
	Ran bool `json:"ran"`
	// Messages are the server's own log lines about recovery, verbatim.
	Messages []string `json:"messages,omitempty"`
}

// TableFailure is one table CHECK TABLE did not pass.
type TableFailure struct {
	Table   string `json:"table"`
	Message string `json:"message"`
}

// BinlogCheck compares the restored binlog with the position tagged at freeze time.
type BinlogCheck struct {
	File  string `json:"file"`
	Pos   uint64 `json:"pos"`
	Size  int64  `json:"size"`
	Match bool   `json:"match"`
	// Skipped says why the comparison was not made (e.g. a set taken without a lock).
	Skipped string `json:"skipped,omitempty"`
}

// GTIDCheck compares the restored server's GTID state with the tagged one.
type GTIDCheck struct {
	Want  string `json:"want"`
	Got   string `json:"got"`
	Match bool   `json:"match"`
	// Skipped says why no comparison was made (no --expect-gtid given); Got
	// is still the restored server's state.
	Skipped string `json:"skipped,omitempty"`
}

// SQLCheck is one statement of the operator's --check-sql file: it passes when
// it returns one row whose first column is true.
type SQLCheck struct {
	SQL string `json:"sql"`
	OK  bool   `json:"ok"`
	Got string `json:"got"`
}
