package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// secret is a string that never prints itself: fmt, slog and JSON all see
// "[redacted]" (or "" when unset, so "no password" stays visible).
type secret string

func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}
func (s secret) GoString() string             { return strconv.Quote(s.String()) }
func (s secret) LogValue() slog.Value         { return slog.StringValue(s.String()) }
func (s secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// connConfig is where the connection goes and as whom. It carries the
// password, so it formats itself (every fmt verb) and logs itself redacted.
type connConfig struct {
	Net      string // unix | tcp
	Addr     string // socket path or host:port
	User     string
	Password secret
}

func (c connConfig) String() string {
	pw := "no"
	if c.Password != "" {
		pw = "yes"
	}
	return fmt.Sprintf("%s@%s(%s) password:%s", c.User, c.Net, c.Addr, pw)
}

// Format routes every verb (%v %+v %#v %s %q) through String, so a struct
// dump can never reach the unexported password bytes.
func (c connConfig) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprint(f, strconv.Quote(c.String()))
		return
	}
	fmt.Fprint(f, c.String())
}

func (c connConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", c.User),
		slog.String("net", c.Net),
		slog.String("addr", c.Addr),
		slog.Bool("password", c.Password != ""),
	)
}

// target works out the connection from the options: command-line flags over
// the defaults file over the defaults (root over the first usual socket,
// unix_socket authentication as OS root). As with the mysql client, host
// "localhost" (or none) means the unix socket; any other host means TCP.
func (o Options) target() (connConfig, error) {
	var co clientOptions
	if o.DefaultsFile != "" {
		var err error
		if co, err = readDefaultsFile(o.DefaultsFile); err != nil {
			return connConfig{}, fmt.Errorf("--mysql-defaults-file %s: %w", o.DefaultsFile, err)
		}
	}
	c := connConfig{User: "root", Password: co.Password}
	if co.User != "" {
		c.User = co.User
	}
	if o.User != "" {
		c.User = o.User
	}
	switch {
	case o.Socket != "":
		c.Net, c.Addr = "unix", o.Socket
	case co.Host != "" && co.Host != "localhost":
		port := co.Port
		if port == 0 {
			port = 3306
		}
		c.Net, c.Addr = "tcp", net.JoinHostPort(co.Host, strconv.Itoa(port))
	case co.Socket != "":
		c.Net, c.Addr = "unix", co.Socket
	default:
		c.Net, c.Addr = "unix", findSocket()
		if c.Addr == "" {
			c.Addr = socketPaths[0]
		}
	}
	return c, nil
}

// Driver timeouts. The dial is short: a local server answers in
// milliseconds, and a hung one must not eat the lock-wait budget. The read
// timeout only runs while a statement is in flight (an idle connection
// holding the lock reads nothing), so it just has to outlast the longest
// statement we send, the lock itself, which lock_wait_timeout and the
// watchdog bound.
const (
	dialTimeout  = 2 * time.Second
	writeTimeout = 10 * time.Second
	readSlack    = 30 * time.Second
	// holdIdleTimeout is the session wait_timeout/interactive_timeout: the
	// server must not drop the idle holder connection (and with it the lock)
	// while a hold of up to --timeout (10 min max) is in progress, whatever
	// the server's global wait_timeout is.
	holdIdleTimeout = 15 * time.Minute
)

// driverLogger sends the driver's own diagnostics ("packets.go: unexpected
// EOF", …) to slog instead of the standard logger on stderr. They never
// contain the DSN.
type driverLogger struct{}

func (driverLogger) Print(v ...any) {
	slog.Debug("mysql driver", "msg", fmt.Sprint(v...))
}

// open returns a pool limited to one connection, whose statements wait up to
// lockWait (plus slack) for an answer.
func open(c connConfig, lockWait time.Duration) (*sql.DB, error) {
	return openOne(c, lockWait+readSlack, false)
}

// openOne returns a pool limited to one connection. The connector is built
// from a Config (never a DSN string) so the password never exists in a string
// that could end up in an error. interpolate has the driver put arguments in
// the statement text rather than prepare each statement.
func openOne(c connConfig, readTimeout time.Duration, interpolate bool) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net = c.Net
	cfg.Addr = c.Addr
	cfg.User = c.User
	cfg.Passwd = string(c.Password)
	cfg.Timeout = dialTimeout
	cfg.ReadTimeout = readTimeout
	cfg.WriteTimeout = writeTimeout
	cfg.InterpolateParams = interpolate
	cfg.Logger = driverLogger{}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: %v", c, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// pin opens a pool of one connection to the server o names (openOne) and
// pins that connection within ctx.
func pin(ctx context.Context, o Options, readTimeout time.Duration, interpolate bool) (*session, error) {
	c, err := o.target()
	if err != nil {
		return nil, err
	}
	db, err := openOne(c, readTimeout, interpolate)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql connect %s: %w", c, err)
	}
	return &session{cfg: c, db: db, conn: conn, opened: time.Now()}, nil
}

// session is one pinned connection and what we learnt about the server.
type session struct {
	cfg     connConfig
	db      *sql.DB
	conn    *sql.Conn
	id      uint64
	server  serverInfo
	opened  time.Time
	lockSec int
}

// connect opens the pinned connection and sets the session up in two round
// trips: the timeouts, then identity, version and the variables the lock
// needs.
func connect(ctx context.Context, o Options) (*session, error) {
	cctx, cancel := context.WithTimeout(ctx, dialTimeout+time.Second)
	defer cancel()
	s, err := pin(cctx, o, o.LockWait+readSlack, false)
	if err != nil {
		return nil, err
	}
	s.lockSec = lockWaitSeconds(o.LockWait)
	c, conn := s.cfg, s.conn
	idle := int(holdIdleTimeout / time.Second)
	if _, err := conn.ExecContext(cctx, fmt.Sprintf(
		"SET SESSION lock_wait_timeout = %d, SESSION wait_timeout = %d, SESSION interactive_timeout = %d",
		s.lockSec, idle, idle)); err != nil {
		s.close()
		return nil, fmt.Errorf("mysql %s: session setup: %w", c, err)
	}
	var version string
	var flushAtCommit, logBin sql.NullInt64
	var delayKeyWrite sql.NullString
	row := conn.QueryRowContext(cctx, "SELECT CONNECTION_ID(), VERSION(), @@global.log_bin, @@global.delay_key_write, @@global.innodb_flush_log_at_trx_commit")
	if err := row.Scan(&s.id, &version, &logBin, &delayKeyWrite, &flushAtCommit); err != nil {
		// innodb_flush_log_at_trx_commit is missing only without InnoDB.
		row = conn.QueryRowContext(cctx, "SELECT CONNECTION_ID(), VERSION(), @@global.log_bin")
		if err2 := row.Scan(&s.id, &version, &logBin); err2 != nil {
			s.close()
			return nil, fmt.Errorf("mysql %s: server identity: %w", c, err2)
		}
		flushAtCommit = sql.NullInt64{Int64: 1, Valid: true}
	}
	s.server = parseVersion(version)
	s.server.LogBin = logBin.Valid && logBin.Int64 == 1
	s.server.FlushLogAtCommit = flushAtCommit.Int64
	s.server.DelayKeyWriteAll = strings.EqualFold(delayKeyWrite.String, "ALL")
	return s, nil
}

// lockWaitSeconds: lock_wait_timeout takes whole seconds; round up so the
// server never gives up before --lock-wait (the watchdog enforces sub-second
// values), minimum 1.
func lockWaitSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func (s *session) close() {
	if s == nil {
		return
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}
