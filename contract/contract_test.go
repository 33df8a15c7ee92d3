package contract

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestExitCodeRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want ExitCode
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailed},
		{fmt.Errorf("--mount %q: %w", "x", ErrUsage), ExitUsage},
		{fmt.Errorf("freeze /a: %w", ErrBusy), ExitBusy},
		{fmt.Errorf("thaw: %w", ErrLate), ExitLate},
		{fmt.Errorf("lock: %w", fmt.Errorf("wait: %w", ErrLockWait)), ExitLockWait},
		{errors.Join(errors.New("x"), ErrLockWait), ExitLockWait},
		{fmt.Errorf("verify: %w", ErrVerifyFailed), ExitVerifyFailed},
		// Two sentinels: the table's order decides.
		{errors.Join(ErrBusy, ErrUsage), ExitUsage},
	} {
		got := ExitCodeOf(tt.err)
		if got != tt.want {
			t.Errorf("ExitCodeOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
		if tt.err == nil {
			continue
		}
		// What another process rebuilds from the code maps to the same code
		// and keeps the message.
		back := &ExitError{Code: got, Message: tt.err.Error()}
		if ExitCodeOf(back) != tt.want || back.Error() != tt.err.Error() {
			t.Errorf("ExitError{%d} maps to %d with message %q", got, ExitCodeOf(back), back.Error())
		}
	}
}

func TestExitCodeMeaning(t *testing.T) {
	for c := ExitCode(-1); c <= 7; c++ {
		known := c >= 0 && c <= 6
		if c.Known() != known {
			t.Errorf("%d.Known() = %v", c, c.Known())
		}
		s := (&ExitError{Code: c}).Error()
		if known && !strings.Contains(s, fmt.Sprintf("(exit %d)", c)) || !known && !strings.Contains(s, "unknown exit status") {
			t.Errorf("ExitError{%d} = %q", c, s)
		}
		if !known && ExitCodeOf(&ExitError{Code: c}) != ExitFailed {
			t.Errorf("unknown status %d maps to %d, want ExitFailed", c, ExitCodeOf(&ExitError{Code: c}))
		}
	}
	if ExitOK.Sentinel() != nil || ExitCodeOf(&ExitError{Code: ExitBusy}) != ExitBusy {
		t.Error("sentinels")
	}
}

func TestValidRunIDMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(RunIDPattern)
	for _, id := range []string{"", "a", "-a", "a-", "20261125T194500Z-a1b2c3", "a_b", "a.b", "a b", "ä", strings.Repeat("a", 64), strings.Repeat("a", 65), "A-9"} {
		if got, want := ValidRunID(id), re.MatchString(id); got != want {
			t.Errorf("ValidRunID(%q) = %v, pattern says %v", id, got, want)
		}
	}
}

func TestSnapshotTagKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range SnapshotTagKeys {
		if seen[k] {
			t.Errorf("%s listed twice: the budget would be undercounted", k)
		}
		seen[k] = true
		if k != TagName && !strings.HasPrefix(k, TagPrefix) {
			t.Errorf("%s: quiesce's own keys start with %s (users may not use it)", k, TagPrefix)
		}
	}
	if ReservedTags+MaxUserTags != MaxTagsPerResource || MaxUserTags <= 0 {
		t.Errorf("budget %d reserved + %d user", ReservedTags, MaxUserTags)
	}
}

func TestCommandParameters(t *testing.T) {
	thaw := CommandParams{Action: ActionThaw, RunID: "r1", FreezeRequest: FreezeRequest{Mounts: []string{"/a"}}}.Parameters()
	if len(thaw) != 2 || thaw[ParamAction][0] != "thaw" || thaw[ParamRunID][0] != "r1" {
		t.Errorf("thaw = %v", thaw)
	}
	fz := CommandParams{Action: ActionFreeze, RunID: "r1", FreezeRequest: FreezeRequest{Mounts: []string{"/a", "/b"}, MySQLLock: LockAuto,
		LockWait: 1500e6, KillLongQueries: true}, Timeout: 90e9}.Parameters()
	want := map[string]string{ParamMounts: "/a,/b", ParamLockWait: "1.5s", ParamKillLongQueries: "true", ParamTimeout: "1m30s", ParamMySQLDefaultsFile: ""}
	for k, v := range want {
		if got := fz[k]; len(got) != 1 || got[0] != v {
			t.Errorf("freeze %s = %v, want %q", k, got, v)
		}
	}
	if len(fz) != 9 {
		t.Errorf("freeze sends %d parameters: %v", len(fz), fz)
	}
}
