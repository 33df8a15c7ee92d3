package mysqllock

import (
	"testing"

	"github.com/quiesce/quiesce/contract"
)

// The lock's report carries the settings a restore needs, read from the
// real server (the shared one runs with --log-bin=<datadir>/binlog).
func TestAcquireReportsRestoreInfo(t *testing.T) {
	m, _ := server(t)
	_, info := acquire(t, opts(m, contract.LockFTWRL))
	ri := info.Restore
	if ri == nil {
		t.Fatal("no restore info in the lock report")
	}
	if ri.DataDir != m.DataDir {
		t.Errorf("datadir %q, want %q", ri.DataDir, m.DataDir)
	}
	if want := m.DataDir + "/binlog"; ri.LogBinBasename != want {
		t.Errorf("log_bin_basename %q, want %q", ri.LogBinBasename, want)
	}
	if ri.InnoDBPageSize != 16384 || ri.LowerCaseTableNames == nil || *ri.LowerCaseTableNames != 0 {
		t.Errorf("page size %d, lower_case_table_names %v", ri.InnoDBPageSize, ri.LowerCaseTableNames)
	}
	if ri.InnoDBDataFilePath != "" || ri.InnoDBLogGroupHomeDir != "" {
		t.Errorf("defaults reported as non-default: %+v", *ri)
	}
}
