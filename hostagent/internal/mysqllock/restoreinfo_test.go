package mysqllock

import (
	"context"
	"reflect"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/quiesce/quiesce/contract"
)

const restoreQuery = "SELECT @@GLOBAL.datadir, @@GLOBAL.log_bin_basename, @@GLOBAL.innodb_page_size, " +
	"@@GLOBAL.lower_case_table_names, @@GLOBAL.innodb_data_file_path, @@GLOBAL.innodb_log_group_home_dir"

func TestReadRestoreInfo(t *testing.T) {
	one0 := 0
	two := 2
	unknown := fakeResult{err: &mysql.MySQLError{Number: 1193, Message: "Unknown system variable"}}
	tests := []struct {
		name    string
		answers map[string]fakeResult
		want    *contract.RestoreInfo
	}{
		{"defaults left out", map[string]fakeResult{restoreQuery: one(nil,
			"/var/lib/mysql/", "/var/lib/mysql/binlog", "16384", "0", "ibdata1:12M:autoextend", "./")},
			&contract.RestoreInfo{DataDir: "/var/lib/mysql", LogBinBasename: "/var/lib/mysql/binlog", InnoDBPageSize: 16384, LowerCaseTableNames: &one0}},
		{"non-defaults kept", map[string]fakeResult{restoreQuery: one(nil,
			"/data/db/", nil, "65536", "2", "ibdata1:1G;ibdata2:1G:autoextend", "/redo/")},
			&contract.RestoreInfo{DataDir: "/data/db", InnoDBPageSize: 65536, LowerCaseTableNames: &two,
				InnoDBDataFilePath: "ibdata1:1G;ibdata2:1G:autoextend", InnoDBLogGroupHomeDir: "/redo"}},
		{"unknown variable read one by one", map[string]fakeResult{restoreQuery: unknown,
			"SELECT @@GLOBAL.datadir":                   one(nil, "/d/"),
			"SELECT @@GLOBAL.log_bin_basename":          unknown,
			"SELECT @@GLOBAL.innodb_page_size":          one(nil, "16384"),
			"SELECT @@GLOBAL.lower_case_table_names":    one(nil, "0"),
			"SELECT @@GLOBAL.innodb_data_file_path":     one(nil, "ibdata1:12M:autoextend"),
			"SELECT @@GLOBAL.innodb_log_group_home_dir": one(nil, "/d/")},
			&contract.RestoreInfo{DataDir: "/d", InnoDBPageSize: 16384, LowerCaseTableNames: &one0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for q, r := range tt.answers {
				if len(r.rows) == 1 {
					r.cols = make([]string, len(r.rows[0]))
					tt.answers[q] = r
				}
			}
			s, _ := fakeSession(t, "10.11.19-MariaDB", true, tt.answers)
			got, err := s.readRestoreInfo(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, *tt.want)
			}
		})
	}
}
