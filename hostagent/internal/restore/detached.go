package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// DetachedSpec is a server that is meant to outlive hostagent: a clone,
// which keeps running as a replica once `hostagent clone` has configured
// it. Unlike StartServer's it has no parent-death signal, its own session,
// and the operator's networking (the option file's server groups).
type DetachedSpec struct {
	Binary string
	// OperatorOptions are the server groups of the operator's option file
	// (ParseOptionFile: port, socket, log paths, ...). The server starts
	// with --no-defaults and gets them on its command line: hostagent reads
	// the file as root, the server may run as another user.
	OperatorOptions []string
	DataDir         string
	// UID/GID the server runs as; 0 runs it as root (--user=root).
	UID, GID int
	// ServerID, if not 0, is given as --server-id (after the file's options).
	ServerID uint32
	// Output receives what the server prints before its error log opens.
	Output string
	// Journal, if set, records the server so a later run kills it when this
	// one died before the clone was configured.
	Journal *Journal
}

// DetachedServer is a started detached server.
type DetachedServer struct {
	Proc    state.Proc
	Args    []string
	Output  string
	exited  chan struct{}
	waitErr error
}

// args: the operator's options, then the datadir and identity, then what
// keeps the clone passive until it is configured: no replication start
// (MariaDB/MySQL ≤ 8.3 and ≥ 8.0.26 spellings, loose- so each ignores the
// other's) and read_only.
func (s DetachedSpec) args() []string {
	a := append([]string{"--no-defaults"}, s.OperatorOptions...)
	a = append(a, "--datadir="+s.DataDir)
	if s.ServerID != 0 {
		a = append(a, "--server-id="+strconv.FormatUint(uint64(s.ServerID), 10))
	}
	a = append(a, "--loose-skip-slave-start", "--loose-skip-replica-start", "--read-only=1")
	if s.UID == 0 {
		a = append(a, "--user=root")
	}
	return a
}

// StartDetached starts the server and returns at once; the caller waits
// until it answers (watching Exited) and stops it with Stop if the clone
// fails.
func StartDetached(spec DetachedSpec) (*DetachedServer, error) {
	out, err := os.OpenFile(spec.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("server output: %w", err)
	}
	defer out.Close()
	d := &DetachedServer{Args: spec.args(), Output: spec.Output, exited: make(chan struct{})}
	cmd := exec.Command(spec.Binary, d.Args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC"}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.UID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.UID), Gid: uint32(spec.GID)}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Binary, err)
	}
	d.Proc, err = state.ProcOf(cmd.Process.Pid)
	if err != nil {
		d.Proc = state.Proc{PID: cmd.Process.Pid}
	}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	if spec.Journal != nil {
		if err := spec.Journal.SetServer(d.Proc); err != nil {
			return nil, errors.Join(err, d.Stop(context.Background()))
		}
	}
	return d, nil
}

// Exited is closed once the server has exited (while this process runs).
func (d *DetachedServer) Exited() <-chan struct{} { return d.exited }

// ExitErr is the server's exit status once Exited is closed.
func (d *DetachedServer) ExitErr() error { return d.waitErr }

// OutputTail returns the last n bytes the server printed to Output.
func (d *DetachedServer) OutputTail(n int) string { return fileTail(d.Output, n) }

// Stop shuts the server down (SIGTERM, a clean shutdown), waiting up to
// ctx's deadline (at most 10 min), then kills it. Safe to call twice.
func (d *DetachedServer) Stop(ctx context.Context) error {
	if d == nil {
		return nil
	}
	return stopServer(ctx, d.Proc.PID, d.exited)
}
