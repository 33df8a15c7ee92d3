// Package rie runs a Lambda bootstrap on this machine and invokes it over
// HTTP, as AWS would: under the Runtime Interface Emulator (aws-lambda-rie),
// or, where it is not installed, under a minimal Lambda Runtime API served
// here. The Lambda's own tests and the demo harness both drive it. It does
// not import testing (the demo binary links it).
package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/test/gotool"
)

// Mode names how a Function runs.
const (
	ModeRIE        = "rie"
	ModeRuntimeAPI = "runtime-api"
)

// Function is a running bootstrap process (and its emulator).
type Function struct {
	Mode string // ModeRIE or ModeRuntimeAPI

	invokeURL string
	cmd       *exec.Cmd
	exited    chan struct{}
	logs      *tailBuffer

	// runtime-api mode
	rt  *runtimeAPI
	srv *http.Server
}

// Config describes how to start the function.
type Config struct {
	Bootstrap string   // the function's executable (a native build); it runs in its own directory
	RIE       string   // aws-lambda-rie path, "" to use the built-in Runtime API
	Env       []string // the function's whole environment: nothing is inherited
	Timeout   time.Duration
	LogTo     io.Writer // also gets the function's stdout/stderr (slog JSON, EMF), may be nil
}

// Find looks for aws-lambda-rie on PATH and in the Go bin directories
// (where scripts/install-deps.sh installs it), without running it: its
// --help does not print help, it waits forever. "" if it is not installed.
func Find() string {
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if out, err := exec.Command(gotool.Path(), "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.Join(strings.TrimSpace(string(out)), "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	dirs = append(dirs, "/root/go/bin")
	for _, d := range dirs {
		p := filepath.Join(d, "aws-lambda-rie")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start starts aws-lambda-rie (or the built-in Runtime API) with the
// bootstrap and, for RIE, waits until it listens. Stop ends it.
func Start(ctx context.Context, c Config) (*Function, error) {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if _, err := os.Stat(c.Bootstrap); err != nil {
		return nil, fmt.Errorf("lambda bootstrap: %w (run make build)", err)
	}
	l := &Function{exited: make(chan struct{}), logs: &tailBuffer{max: 4 << 20}}
	var out io.Writer = l.logs
	if c.LogTo != nil {
		out = io.MultiWriter(l.logs, c.LogTo)
	}
	env := append(append([]string(nil), c.Env...), "AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(c.Timeout/time.Second)))
	if c.RIE != "" {
		return l, l.startRIE(ctx, c, env, out)
	}
	l.Mode = ModeRuntimeAPI
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.rt = newRuntimeAPI(c.Timeout)
	l.srv = &http.Server{Handler: l.rt, ReadHeaderTimeout: 10 * time.Second}
	go l.srv.Serve(ln) //nolint:errcheck // ends with Stop
	l.cmd = exec.Command(c.Bootstrap)
	l.cmd.Env = append(env, "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "_HANDLER=bootstrap")
	if err := l.startProcess(c.Bootstrap, out); err != nil {
		l.srv.Close()
		return nil, fmt.Errorf("start bootstrap: %w", err)
	}
	return l, nil
}

func (l *Function) startRIE(ctx context.Context, c Config, env []string, out io.Writer) error {
	l.Mode = ModeRIE
	rieAddr, err := freeAddr()
	if err != nil {
		return err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return err
	}
	l.cmd = exec.Command(c.RIE, "--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr, c.Bootstrap)
	l.cmd.Env = env
	l.invokeURL = "http://" + rieAddr + "/2015-03-31/functions/function/invocations"
	if err := l.startProcess(c.Bootstrap, out); err != nil {
		return fmt.Errorf("start aws-lambda-rie: %w", err)
	}
	if err := waitTCP(ctx, rieAddr, 10*time.Second, l.exited); err != nil {
		l.Stop()
		return fmt.Errorf("aws-lambda-rie not listening on %s: %w; output:\n%s", rieAddr, err, l.logs.String())
	}
	return nil
}

func (l *Function) startProcess(bootstrap string, out io.Writer) error {
	l.cmd.Dir = filepath.Dir(bootstrap) // as /var/task is on AWS
	l.cmd.Stdout, l.cmd.Stderr = out, out
	// Own process group: Stop signals RIE and the bootstrap it started.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := l.cmd.Start(); err != nil {
		return err
	}
	go func() { _ = l.cmd.Wait(); close(l.exited) }()
	return nil
}

func waitTCP(ctx context.Context, addr string, limit time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("process exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Invoke sends one event and returns the function's response payload.
// A function error comes back as an error carrying errorType/errorMessage,
// with the payload still returned.
func (l *Function) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	if l.Mode == ModeRuntimeAPI {
		return l.rt.invoke(ctx, event, l.exited)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.invokeURL, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke via RIE: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("invoke via RIE: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("invoke via RIE: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if fe := functionError(body); fe != nil {
		return body, fe
	}
	return body, nil
}

// FunctionError is an error returned by the handler.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return "function error " + e.Type + ": " + e.Message }

func functionError(body []byte) *FunctionError {
	var fe FunctionError
	if json.Unmarshal(body, &fe) == nil && fe.Message != "" && fe.Type != "" {
		var probe map[string]json.RawMessage
		_ = json.Unmarshal(body, &probe)
		if len(probe) <= 3 { // errorType, errorMessage, stackTrace
			return &fe
		}
	}
	return nil
}

// Logs returns the tail of the function's (and RIE's) output.
func (l *Function) Logs() string { return l.logs.String() }

// Exited is closed once the process (RIE or the bootstrap) has exited.
func (l *Function) Exited() <-chan struct{} { return l.exited }

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// InitMS is the cold init RIE reported (process start to the runtime's
// first /next), or -1 when its output has no INIT REPORT (yet).
func (l *Function) InitMS() float64 {
	m := initReport.FindStringSubmatch(l.logs.String())
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// Stop ends RIE/bootstrap by PID (its own process group): SIGTERM, bounded wait, SIGKILL.
func (l *Function) Stop() error {
	if l == nil {
		return nil
	}
	if l.srv != nil {
		defer l.srv.Close()
	}
	if l.cmd == nil || l.cmd.Process == nil {
		return nil
	}
	pgid := l.cmd.Process.Pid
	select {
	case <-l.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-l.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-l.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("lambda process %d did not exit after SIGKILL", pgid)
	}
}

// runtimeAPI is the smallest Lambda Runtime API that the aws-lambda-go
// runtime needs: next invocation, response, error, init error.
type runtimeAPI struct {
	timeout time.Duration
	next    chan *rtInvocation
	mu      sync.Mutex
	pending map[string]*rtInvocation
	seq     int
	initErr chan []byte
}

type rtInvocation struct {
	id       string
	event    []byte
	deadline time.Time
	done     chan rtResult
}

type rtResult struct {
	body    []byte
	isError bool
}

func newRuntimeAPI(timeout time.Duration) *runtimeAPI {
	return &runtimeAPI{timeout: timeout, next: make(chan *rtInvocation), pending: map[string]*rtInvocation{}, initErr: make(chan []byte, 1)}
}

func (rt *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/2018-06-01/runtime/"
	path := strings.TrimPrefix(r.URL.Path, prefix)
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		select {
		case inv := <-rt.next:
			h := w.Header()
			h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
			h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
			h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:quiesce-demo")
			h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
			w.WriteHeader(http.StatusOK)
			w.Write(inv.event) //nolint:errcheck
		case <-r.Context().Done():
		}
	case r.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case rt.initErr <- body:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		rest := strings.TrimPrefix(path, "invocation/")
		id, kind, _ := strings.Cut(rest, "/")
		body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		rt.mu.Lock()
		inv := rt.pending[id]
		delete(rt.pending, id)
		rt.mu.Unlock()
		if inv == nil || (kind != "response" && kind != "error") {
			http.Error(w, "unknown invocation", http.StatusBadRequest)
			return
		}
		inv.done <- rtResult{body: body, isError: kind == "error"}
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

func (rt *runtimeAPI) invoke(ctx context.Context, event []byte, exited <-chan struct{}) ([]byte, error) {
	rt.mu.Lock()
	rt.seq++
	inv := &rtInvocation{id: fmt.Sprintf("demo-%06d", rt.seq), event: event, deadline: time.Now().Add(rt.timeout), done: make(chan rtResult, 1)}
	rt.pending[inv.id] = inv
	rt.mu.Unlock()
	timer := time.NewTimer(rt.timeout + 5*time.Second)
	defer timer.Stop()
	select {
	case rt.next <- inv:
	case b := <-rt.initErr:
		return b, fmt.Errorf("bootstrap init error: %s", b)
	case <-exited:
		return nil, errors.New("bootstrap exited")
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, errors.New("bootstrap never asked for the invocation")
	}
	select {
	case res := <-inv.done:
		if res.isError {
			if fe := functionError(res.body); fe != nil {
				return res.body, fe
			}
			return res.body, fmt.Errorf("function error: %s", res.body)
		}
		return res.body, nil
	case <-exited:
		return nil, errors.New("bootstrap exited during the invocation")
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("invocation timed out after %s", rt.timeout)
	}
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
