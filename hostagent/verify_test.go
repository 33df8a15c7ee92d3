package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

func TestVerifyParseSettings(t *testing.T) {
	c := &command{name: "verify", stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	in, err := c.parseVerify([]string{"--volume", "vol-0abc12345678,vol-0def12345678", "--mysqld", "/bin/true",
		"--innodb-page-size", "65536", "--lower-case-table-names", "1", "--innodb-data-file-path", "ibdata1:1G:autoextend",
		"--expect-binlog-file", "mysql-bin.000042", "--expect-binlog-pos", "91823", "--expect-gtid", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--innodb-page-size=65536", "--lower-case-table-names=1", "--innodb-data-file-path=ibdata1:1G:autoextend"}
	if fmt.Sprint(in.settings) != fmt.Sprint(want) || len(in.volumes) != 2 || in.binlogPos != 91823 || !in.expectBinlog {
		t.Errorf("parsed %+v", in)
	}
	// --expect-gtid "" (a source without GTIDs) is an expectation, not an omission.
	if !in.expectGTID || in.runID == "" {
		t.Errorf("expectGTID %v, run id %q", in.expectGTID, in.runID)
	}
}

// The longest --timeout the Lambda sends (VerifyMaxHours at its bound, less
// its margin) is one hostagent accepts: a 24 h cap here once turned every
// verification with max_hours > 24 into a failed set.
func TestVerifyAcceptsTheLambdasLongestTimeout(t *testing.T) {
	longest := time.Duration(contract.MaxVerifyHours)*time.Hour - 10*time.Minute
	c := &command{name: "verify", stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	if _, err := c.parseVerify([]string{"--volume", "vol-0abc12345678", "--timeout", longest.String()}); err != nil {
		t.Fatalf("--timeout %s: %v", longest, err)
	}
	if _, err := c.parseVerify([]string{"--volume", "vol-0abc12345678", "--timeout", (time.Duration(contract.MaxVerifyHours)*time.Hour + time.Minute).String()}); err == nil {
		t.Fatal("a --timeout past MaxVerifyHours was accepted")
	}
}
