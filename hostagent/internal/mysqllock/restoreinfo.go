package mysqllock

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// restoreVariables are the settings a restored copy must start with: where
// the files are, and the ones InnoDB refuses to open a datadir without
// (page size, system tablespace layout) or that change how names resolve.
var restoreVariables = []string{
	"datadir", "log_bin_basename", "innodb_page_size", "lower_case_table_names",
	"innodb_data_file_path", "innodb_log_group_home_dir",
}

// Server defaults; non-default values only are reported.
const (
	defaultDataFilePath = "ibdata1:12M:autoextend"
	defaultLogGroupHome = "./"
)

// readRestoreInfo reads the restore settings. They cannot change while the
// server runs, so this happens before the lock is taken rather than under
// it, where every statement lengthens the time writers wait. One statement;
// if a variable is unknown on this server (old versions, InnoDB absent), each
// is read alone and the unknown ones are left empty.
func (s *session) readRestoreInfo(ctx context.Context) (*contract.RestoreInfo, error) {
	cols := make([]string, len(restoreVariables))
	for i, v := range restoreVariables {
		cols[i] = "@@GLOBAL." + v
	}
	vals := make([]sql.NullString, len(restoreVariables))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := s.conn.QueryRowContext(ctx, "SELECT "+strings.Join(cols, ", ")).Scan(ptrs...)
	if sqlErrorNumber(err) == errUnknownSystemVariable {
		err = nil
		for i, c := range cols {
			e := s.conn.QueryRowContext(ctx, "SELECT "+c).Scan(&vals[i])
			if e != nil && sqlErrorNumber(e) != errUnknownSystemVariable {
				err = errors.Join(err, e)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return restoreInfoFrom(vals), nil
}

func restoreInfoFrom(vals []sql.NullString) *contract.RestoreInfo {
	get := func(name string) sql.NullString {
		for i, v := range restoreVariables {
			if v == name {
				return vals[i]
			}
		}
		return sql.NullString{}
	}
	ri := &contract.RestoreInfo{
		DataDir:        trimDir(get("datadir").String),
		LogBinBasename: get("log_bin_basename").String,
	}
	if v := get("innodb_page_size"); v.Valid {
		ri.InnoDBPageSize = parseUintOr0(v.String)
	}
	if v := get("lower_case_table_names"); v.Valid {
		n := int(parseUintOr0(v.String))
		ri.LowerCaseTableNames = &n
	}
	if v := get("innodb_data_file_path").String; v != "" && v != defaultDataFilePath {
		ri.InnoDBDataFilePath = v
	}
	if v := get("innodb_log_group_home_dir").String; v != "" && v != defaultLogGroupHome && v != "." &&
		trimDir(v) != ri.DataDir {
		ri.InnoDBLogGroupHomeDir = trimDir(v)
	}
	return ri
}

func trimDir(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}

func parseUintOr0(s string) uint64 {
	var n uint64
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
