package ssmrun

import (
	"testing"

	"github.com/quiesce/quiesce/contract"
)

func TestErrorOf(t *testing.T) {
	tests := []struct{ name, stdout, stderr, want string }{
		{"error report", `{"error":"lock wait timeout","exit_code":5}` + "\n", "ignored", "lock wait timeout"},
		{"error report then more", `{"error":"first","exit_code":1}` + "\n" + `{"other":1}`, "", "first"},
		{"no report: stderr's last line", "not json", "line one\nline two\n", "line two"},
		{"report without an error", `{"ok":true}`, "boom", "boom"},
		{"nothing at all", "", "  \n", "no output"},
	}
	for _, tt := range tests {
		if got := ErrorOf(tt.stdout, tt.stderr); got != tt.want {
			t.Errorf("%s: ErrorOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReport(t *testing.T) {
	complete := func(r *contract.VerifyReport) bool { return r.Volumes != nil }
	if r := Report(`{"ok":true,"volumes":["vol-1"]}`+"\n", complete); r == nil || !r.OK || r.Volumes[0] != "vol-1" {
		t.Errorf("whole report: %+v", r)
	}
	for _, stdout := range []string{"", `{"ok":true,"volu`, `{"ok":true}`} {
		if r := Report(stdout, complete); r != nil {
			t.Errorf("%q: %+v, want none", stdout, r)
		}
	}
}
