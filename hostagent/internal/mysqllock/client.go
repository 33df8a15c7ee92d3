package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Credentials are a user and password read from one option-file group (the
// replication account `hostagent clone` points a copy at its source with).
// The password never prints itself.
type Credentials struct {
	User     string
	Password secret
}

// ReadCredentials reads user and password from group of the option file at
// path, with the same reader (and the same refusals: world-writable,
// !include, a password without a value) as --mysql-defaults-file. Both must
// be set.
func ReadCredentials(path, group string) (Credentials, error) {
	co, err := readDefaultsGroups(path, []string{strings.ToLower(group)})
	if err != nil {
		return Credentials{}, err
	}
	if co.User == "" || co.Password == "" {
		return Credentials{}, fmt.Errorf("%s: no user and password in group [%s]", path, group)
	}
	return Credentials{User: co.User, Password: co.Password}, nil
}

// Client is a connection to a server that is not being locked: the one
// `hostagent clone` configures. Statements with ? placeholders are
// interpolated on the client, escaped for the session's sql_mode, so values
// (a password) never need quoting by hand.
type Client struct {
	s *session
}

// Dial connects as --mysql-defaults-file/--mysql-socket/--mysql-user would
// for freeze, with statements bounded by stmtTimeout.
func Dial(ctx context.Context, o Options, stmtTimeout time.Duration) (*Client, error) {
	cctx, cancel := context.WithTimeout(ctx, dialTimeout+time.Second)
	defer cancel()
	s, err := pin(cctx, o, stmtTimeout, true)
	if err != nil {
		return nil, err
	}
	var version string
	if err := s.conn.QueryRowContext(cctx, "SELECT CONNECTION_ID(), VERSION()").Scan(&s.id, &version); err != nil {
		s.close()
		return nil, fmt.Errorf("mysql %s: server identity: %w", s.cfg, err)
	}
	s.server = parseVersion(version)
	return &Client{s: s}, nil
}

// Conn is the client's one connection.
func (c *Client) Conn() *sql.Conn { return c.s.conn }

// Version is the server's VERSION().
func (c *Client) Version() string { return c.s.server.Version }

// MariaDB reports whether the server is MariaDB.
func (c *Client) MariaDB() bool { return c.s.server.MariaDB }

// Replication reads every channel's status (nil when none is configured).
func (c *Client) Replication(ctx context.Context) (*contract.Replication, error) {
	return c.s.readReplication(ctx)
}

// Close closes the connection.
func (c *Client) Close() {
	if c != nil {
		c.s.close()
	}
}

// MySQLAtLeast reports whether the server is MySQL (not MariaDB) of at
// least the given version.
func (c *Client) MySQLAtLeast(major, minor, patch int) bool {
	si := c.s.server
	if si.MariaDB {
		return false
	}
	if si.Major != major {
		return si.Major > major
	}
	if si.Minor != minor {
		return si.Minor > minor
	}
	return si.Patch >= patch
}
