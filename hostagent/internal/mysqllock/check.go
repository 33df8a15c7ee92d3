package mysqllock

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// Check is the preflight of `hostagent check`: it connects, reads the
// version, resolves `auto` to the lock Acquire would take, verifies the
// privileges that lock (and --long-query-limit / --kill-long-queries / the
// position) needs, and reads the current binary log file/position (empty when
// the log is off). It takes no lock and changes nothing.
func Check(ctx context.Context, o Options) (contract.LockInfo, error) {
	info := contract.LockInfo{Mode: o.Mode, Requested: o.Mode}
	if err := o.Validate(); err != nil {
		return info, err
	}
	o, involved := Resolve(o)
	if !involved {
		info.Mode = contract.LockNone
		return info, nil
	}
	s, err := connect(ctx, o)
	if staleAutoSocket(o, err) {
		info.Mode = contract.LockNone
		return info, nil
	}
	if err != nil {
		return info, err
	}
	defer s.close()
	info.ServerVersion = s.server.Version
	mode, err := s.server.concreteMode(o.Mode)
	if err != nil {
		return info, err
	}
	info.Mode = mode

	var problems []string
	missing, err := s.missingPrivileges(ctx, mode, o)
	if err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, missing...)
	if mode == contract.LockReplica {
		if err := s.replicaPreconditions(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if s.server.LogBin {
		if err := s.showBinlogStatus(ctx, positionStatement(s.server), &info); err != nil && !isAccessDenied(err) {
			problems = append(problems, fmt.Sprintf("read binlog position: %v", err))
		}
	}
	if len(problems) > 0 {
		return info, fmt.Errorf("mysql %s (%s): %s", s.cfg, s.server.short(), strings.Join(problems, "; "))
	}
	return info, nil
}

func positionStatement(si serverInfo) string {
	if !si.MariaDB && si.atLeast(8, 2) {
		return "SHOW BINARY LOG STATUS"
	}
	return "SHOW MASTER STATUS"
}

// missingPrivileges compares the global privileges of CURRENT_USER() (from
// information_schema.USER_PRIVILEGES, which lists ALL PRIVILEGES expanded and,
// on MySQL 8, dynamic privileges) with what the lock needs. Privileges that
// come only through a role are not seen; that shows as a false "missing".
func (s *session) missingPrivileges(ctx context.Context, mode string, o Options) ([]string, error) {
	var current string
	if err := s.conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	at := strings.LastIndexByte(current, '@')
	if at < 0 {
		return nil, fmt.Errorf("current user %q: no host part", current)
	}
	grantee := fmt.Sprintf("'%s'@'%s'", current[:at], current[at+1:])
	rows, err := s.conn.QueryContext(ctx, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", grantee)
	if err != nil {
		return nil, fmt.Errorf("list privileges of %s: %w", current, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		have[strings.ToUpper(p)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for need, anyOf := range s.server.requiredPrivileges(mode, o) {
		ok := false
		for _, p := range anyOf {
			ok = ok || have[p]
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("user %s lacks %s (needed for %s)", current, strings.Join(anyOf, " or "), need))
		}
	}
	sort.Strings(missing)
	return missing, nil
}
