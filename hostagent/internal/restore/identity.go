package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// sourceStateFiles are the files in a datadir that carry the source's
// identity or its replication, which a clone must not inherit: auto.cnf
// (MySQL's server_uuid: two servers with one uuid break GTID replication)
// and the replication metadata of a replica's snapshot (MariaDB keeps it in
// files; multi-source adds one file per connection). Without them the
// server starts with no replication configured, so it cannot resume the old
// stream, not even for the moment before RESET SLAVE ALL, in which it would
// connect to the source under the snapshotted replica's server_id and
// displace the real replica's connection.
var sourceStateFiles = []string{
	"auto.cnf", "master.info", "relay-log.info", "multi-master.info",
	"master-*.info", "relay-log-*.info",
}

// RemoveSourceState removes the source's identity and replication files
// from datadir and returns the names it removed, sorted. Relay logs stay:
// RESET SLAVE ALL deletes them through their index once the server runs.
func RemoveSourceState(datadir string) ([]string, error) {
	removed := []string{}
	for _, pattern := range sourceStateFiles {
		paths, err := filepath.Glob(filepath.Join(datadir, pattern))
		if err != nil {
			return removed, err
		}
		for _, p := range paths {
			st, err := os.Lstat(p)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := os.Remove(p); err != nil {
				return removed, fmt.Errorf("remove %s: %w", p, err)
			}
			removed = append(removed, filepath.Base(p))
		}
	}
	sort.Strings(removed)
	return removed, nil
}
