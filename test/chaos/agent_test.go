package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// client is one `hostagent freeze` run by the suite, with stdout on a pipe
// (as the SSM agent runs it) read line by line, so the moment the report
// arrived is known.
type client struct {
	args    []string
	cmd     *exec.Cmd
	ref     procRef
	spawned time.Time

	mu      sync.Mutex
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	firstAt time.Time // when the first stdout line arrived
	lineCh  chan struct{}
	exited  chan struct{}
	endedAt time.Time
	code    contract.ExitCode // exit code (valid once exited, unless signaled)
	killed  bool              // ended by a signal
	waitErr error
}

func (c *client) String() string { return fmt.Sprintf("hostagent %s", strings.Join(c.args, " ")) }

// startAgent starts hostagent with args; stdout is read on a pipe.
func startAgent(stateDir string, args ...string) (*client, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c := &client{args: args, lineCh: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command(agentBin, args...)
	c.cmd.Dir = "/"
	c.cmd.Env = append(os.Environ(), "QUIESCE_STATE_DIR="+stateDir)
	c.cmd.Stdout = pw
	c.cmd.Stderr = &lockedWriter{mu: &c.mu, buf: &c.stderr}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.spawned = time.Now()
	if err := c.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close()
	c.ref, _ = refOf(c.cmd.Process.Pid)
	if c.ref.PID == 0 {
		c.ref = procRef{PID: c.cmd.Process.Pid}
	}
	go c.read(pr)
	go func() {
		err := c.cmd.Wait()
		c.mu.Lock()
		c.endedAt = time.Now()
		c.waitErr = err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c.code = contract.ExitCode(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				c.killed = true
			}
		}
		c.mu.Unlock()
		close(c.exited)
	}()
	return c, nil
}

// exitedAt is when the process was reaped (zero while it runs).
func (c *client) exitedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endedAt
}

// mountArgs are the --mount values the client was started with.
func (c *client) mountArgs() []string {
	var out []string
	for i, a := range c.args {
		if a == "--mount" && i+1 < len(c.args) {
			out = append(out, c.args[i+1])
		}
	}
	return out
}

func (c *client) read(pr *os.File) {
	defer pr.Close()
	br := bufio.NewReader(pr)
	first := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			c.mu.Lock()
			if first {
				c.firstAt = time.Now()
			}
			c.stdout.Write(line)
			c.mu.Unlock()
			if first {
				close(c.lineCh)
				first = false
			}
		}
		if err != nil {
			return
		}
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// wait waits for the exit at most until limit.
func (c *client) wait(limit time.Time) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(time.Until(limit)):
		return false
	}
}

func (c *client) output() (stdout, stderr string, firstAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout.String(), c.stderr.String(), c.firstAt
}

// freezeReport waits (until limit) for the first stdout line and parses it as
// a FreezeReport; ok=false if none came or it is not one.
func (c *client) freezeReport(limit time.Time) (*contract.FreezeReport, time.Time, bool) {
	select {
	case <-c.lineCh: // checked alone first: select picks at random among ready cases
	default:
		if !c.waitLine(limit) {
			return nil, time.Time{}, false
		}
	}
	out, _, at := c.output()
	var rep contract.FreezeReport
	if err := json.Unmarshal([]byte(firstLine(out)), &rep); err != nil || rep.RunID == "" || rep.Deadline.IsZero() {
		return nil, at, false
	}
	return &rep, at, true
}

// waitLine waits for the first stdout line until limit or the exit.
func (c *client) waitLine(limit time.Time) bool {
	select {
	case <-c.lineCh:
		return true
	case <-c.exited:
		// The reader may still be draining the pipe after the exit.
		select {
		case <-c.lineCh:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	case <-time.After(time.Until(limit)):
		return false
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// result of a synchronous hostagent command.
type result struct {
	code           contract.ExitCode
	stdout, stderr string
	started, ended time.Time
	err            error // could not run, or did not end in time
}

// runAgent runs a hostagent command to completion, bounded by wait.
func runAgent(stateDir string, wait time.Duration, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "QUIESCE_STATE_DIR="+stateDir)
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r := result{started: time.Now()}
	err := cmd.Run()
	r.ended = time.Now()
	r.stdout, r.stderr = out.String(), errb.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.err = fmt.Errorf("hostagent %s did not end within %v", strings.Join(args, " "), wait)
	case errors.As(err, &ee):
		r.code = contract.ExitCode(ee.ExitCode())
	case err != nil:
		r.err = err
	}
	return r
}

// decodeOne requires s to be exactly one JSON object of v's type. Unknown
// fields are accepted: the wire types are extended, never renamed.
func decodeOne(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("stdout is not one %T: %v: %q", v, err, s)
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON object on stdout: %q", s)
	}
	return nil
}
