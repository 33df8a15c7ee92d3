package restore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// ErrServerExited: the server exited before it accepted connections (it
// could not start on the restored files); the error carries its log.
var ErrServerExited = errors.New("server exited during startup")

// ServerSpec describes a throwaway server on a restored datadir.
type ServerSpec struct {
	Binary  string // mariadbd or mysqld
	DataDir string
	// RunDir holds the socket, pid file, error log and tmpdir. It must be
	// private, writable by UID, and short (a socket path has 107 bytes).
	RunDir string
	// UID/GID the server runs as; 0 runs it as root (--user=root).
	UID, GID int
	ServerID uint32
	// LogBin is the log-bin basename; "" turns the binary log off.
	LogBin string
	// Settings are options that must match the source (page size, ...).
	Settings []string
	// OperatorOptions come after Settings (ParseOptionFile); the options that
	// keep the server private and passive come after both and win.
	OperatorOptions []string
	// Extra options appended last (verify: --skip-grant-tables).
	Extra        []string
	StartTimeout time.Duration // default 30 min: crash recovery can be long
	// Journal, if set, records the server so a later run can kill it.
	Journal *Journal
}

// Server is a running throwaway server.
type Server struct {
	Proc          state.Proc
	Socket        string
	ErrorLog      string
	Args          []string
	StartDuration time.Duration // exec until it answered a ping
	Version       string

	exited  chan struct{}
	waitErr error
}

// Args is the server's command line, in order: --no-defaults, the settings,
// the operator's options, then the ones that keep the server private.
func (s ServerSpec) args() []string {
	a := []string{"--no-defaults", "--datadir=" + s.DataDir}
	a = append(a, s.Settings...)
	a = append(a, s.OperatorOptions...)
	a = append(a,
		"--socket="+filepath.Join(s.RunDir, "mysqld.sock"),
		"--pid-file="+filepath.Join(s.RunDir, "mysqld.pid"),
		"--log-error="+filepath.Join(s.RunDir, "error.log"),
		"--tmpdir="+filepath.Join(s.RunDir, "tmp"),
		"--skip-networking",
		"--server-id="+strconv.FormatUint(uint64(s.ServerID), 10),
		// MariaDB and MySQL ≤ 8.3 know the first, MySQL ≥ 8.0.26 the
		// second; loose- lets each server ignore the one it does not know.
		"--loose-skip-slave-start",
		"--loose-skip-replica-start",
		"--loose-wsrep-on=OFF",
		"--loose-mysqlx=OFF",
		"--loose-event-scheduler=OFF",
	)
	if s.LogBin != "" {
		a = append(a, "--log-bin="+s.LogBin)
	} else {
		a = append(a, "--skip-log-bin")
	}
	if s.UID == 0 {
		a = append(a, "--user=root")
	}
	return append(a, s.Extra...)
}

// StartServer starts the server and waits until it answers on its socket.
// It is killed when the calling process dies (parent-death signal). On
// error nothing is left running.
func StartServer(ctx context.Context, spec ServerSpec) (*Server, error) {
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 30 * time.Minute
	}
	if err := os.MkdirAll(filepath.Join(spec.RunDir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("server run dir: %w", err)
	}
	if err := os.Chown(filepath.Join(spec.RunDir, "tmp"), spec.UID, spec.GID); err != nil {
		return nil, fmt.Errorf("server run dir: %w", err)
	}
	s := &Server{Socket: filepath.Join(spec.RunDir, "mysqld.sock"), ErrorLog: filepath.Join(spec.RunDir, "error.log"),
		Args: spec.args(), exited: make(chan struct{})}
	start := time.Now()
	if err := s.exec(spec); err != nil {
		return nil, err
	}
	if spec.Journal != nil {
		if err := spec.Journal.SetServer(s.Proc); err != nil {
			s.kill()
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, spec.StartTimeout)
	defer cancel()
	if err := s.waitReady(wctx); err != nil {
		s.kill()
		return nil, err
	}
	s.StartDuration = time.Since(start)
	if err := s.readVersion(wctx); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// exec starts the process from a goroutine locked to its OS thread: the
// parent-death signal fires when that thread ends, which happens only when
// this process dies (the goroutine waits for the server).
func (s *Server) exec(spec ServerSpec) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		cmd := exec.Command(spec.Binary, s.Args...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC"}
		// What the server prints before its error log is open (a bad
		// option) goes to the same file.
		out, err := os.OpenFile(s.ErrorLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			started <- fmt.Errorf("server error log: %w", err)
			close(s.exited)
			return
		}
		defer out.Close()
		_ = out.Chown(spec.UID, spec.GID)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if spec.UID != 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.UID), Gid: uint32(spec.GID)}
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", spec.Binary, err)
			close(s.exited)
			return
		}
		p, err := state.ProcOf(cmd.Process.Pid)
		if err != nil {
			p = state.Proc{PID: cmd.Process.Pid}
		}
		s.Proc = p
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

func (s *Server) waitReady(ctx context.Context) error {
	db, err := s.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		if _, err := os.Stat(s.Socket); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = db.PingContext(pctx)
			cancel()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w (%v); error log:\n%s", ErrServerExited, s.waitErr, s.LogTail(4000))
		case <-ctx.Done():
			return fmt.Errorf("server pid %d not ready: %w", s.Proc.PID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) readVersion(ctx context.Context) error {
	db, err := s.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.Version); err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	return nil
}

// DB opens a pool to the server as root over its socket. The caller closes it.
func (s *Server) DB() (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = s.Socket
	cfg.Timeout = 5 * time.Second
	cfg.Logger = driverLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// driverLogger sends the driver's own diagnostics (a broken pipe when the
// server dies) to slog rather than stderr, which carries one line per error.
type driverLogger struct{}

func (driverLogger) Print(v ...any) { slog.Debug("mysql driver", "msg", fmt.Sprint(v...)) }

// Exited is closed once the server has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// LogTail returns the last n bytes of the error log.
func (s *Server) LogTail(n int) string { return fileTail(s.ErrorLog, n) }

// Shutdown stops the server cleanly (SIGTERM), waiting up to ctx's deadline
// (at most 10 min), then kills it. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return stopServer(ctx, s.Proc.PID, s.exited)
}

// kill sends SIGKILL and waits (bounded) for the exit.
func (s *Server) kill() error { return killServer(s.Proc.PID, s.exited) }

// fileTail returns the last n bytes of a file, trimmed of white space ("" when unreadable).
func fileTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// stopServer stops the server process pid, whose exit closes exited:
// SIGTERM (a clean shutdown), a wait up to ctx's deadline (at most 10 min),
// then SIGKILL. Safe to call more than once.
func stopServer(ctx context.Context, pid int, exited <-chan struct{}) error {
	select {
	case <-exited:
		return nil
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	select {
	case <-exited:
		return nil
	case <-wctx.Done():
	}
	if err := killServer(pid, exited); err != nil {
		return err
	}
	return fmt.Errorf("server pid %d did not shut down in time; killed", pid)
}

// killServer sends SIGKILL and waits (bounded) for the exit.
func killServer(pid int, exited <-chan struct{}) error {
	select {
	case <-exited:
		return nil
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("server pid %d did not exit after SIGKILL", pid)
	}
}
