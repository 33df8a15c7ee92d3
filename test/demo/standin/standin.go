// Package standin gives the local AWS stand-in (test/awslocal) its demo
// behaviour: SendCommand runs the REAL "Quiesce" and "QuiesceVerify" SSM
// documents (rendered by ssmdoc exactly as the SSM Agent would, parameters
// as SSM_<name> environment variables) with bash, which runs the real
// hostagent; CreateSnapshot(s) makes a point-in-time copy of the volume's
// image in the pool (FICLONE), as EBS fixes a snapshot's point in time when
// the call returns; and the volume calls make volumes real: CreateVolume is
// a FICLONE of the snapshot's image named vol-….img, AttachVolume
// loop-attaches it (so hostagent finds it by its backing file, as its volume
// discovery does), DetachVolume detaches it (refused while it is mounted),
// DeleteVolume removes the image. test/cmd/awslocal and the demo share it.
package standin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/pool"
)

// Document names the Lambda sends by default (QUIESCE_DOCUMENT, QUIESCE_VERIFY_DOCUMENT).
const (
	DefaultDocumentName       = "Quiesce"
	DefaultVerifyDocumentName = "QuiesceVerify"
)

// CommandRun is one executed SSM command, for the demo's timings.
type CommandRun struct {
	Invocation awslocal.Invocation
	Result     awslocal.CommandResult
	Started    time.Time // bash started
	Ended      time.Time // bash exited (and its stdout closed)
}

// Clone is one snapshot copy made by OnSnapshot.
type Clone struct {
	SnapshotID string
	VolumeID   string
	InstanceID string
	Path       string // pool/snap-….img
	pool.CloneResult
	At time.Time // when the copy started (the snapshot's point in time)
}

// Hooks implements awslocal's RunCommand and OnSnapshot.
type Hooks struct {
	// Document is the rendered SSM document (ssmdoc.Load(ssmdoc.QuiesceDocument())).
	Document *ssmdoc.Document
	// DocumentName is the name the Lambda sends (default "Quiesce").
	DocumentName string
	// VerifyDocument is the rendered verify document (ssmdoc.VerifyDocument()),
	// served as VerifyDocumentName (default "QuiesceVerify"); nil serves none.
	VerifyDocument     *ssmdoc.Document
	VerifyDocumentName string
	// BinDir holds bin/hostagent; it goes first on the script's PATH.
	BinDir string
	// PoolDir holds vol-<id>.img files; snapshots are written next to them.
	PoolDir string
	// Env is extra environment for the script (e.g. TMPDIR); the rest is inherited.
	Env []string
	// MaxCommandTime bounds one command (default: the invocation's TimeoutSeconds, else 15 m).
	MaxCommandTime time.Duration
	// StdoutGrace bounds the wait for the script's output pipes after bash
	// exits: a hostagent whose detached holder kept stdout open would hang the
	// real SSM Agent; here it is reported as a failure instead (default 5 s).
	StdoutGrace time.Duration
	// OnCommand, if set, is called after each command with its outcome.
	OnCommand func(CommandRun)

	mu      sync.Mutex
	runs    []CommandRun
	clones  map[string]Clone
	volumes map[string]*volumeRecord
}

// NewHooks loads the embedded Quiesce and QuiesceVerify documents.
func NewHooks(binDir, poolDir string) (*Hooks, error) {
	doc, err := ssmdoc.Load(ssmdoc.QuiesceDocument())
	if err != nil {
		return nil, fmt.Errorf("load Quiesce document: %w", err)
	}
	vdoc, err := ssmdoc.Load(ssmdoc.VerifyDocument())
	if err != nil {
		return nil, fmt.Errorf("load QuiesceVerify document: %w", err)
	}
	return &Hooks{Document: doc, DocumentName: DefaultDocumentName, VerifyDocument: vdoc, VerifyDocumentName: DefaultVerifyDocumentName,
		BinDir: binDir, PoolDir: poolDir}, nil
}

// documents maps each served document name to its document.
func (h *Hooks) documents() map[string]*ssmdoc.Document {
	docs := map[string]*ssmdoc.Document{first(h.DocumentName, DefaultDocumentName): h.Document}
	if h.VerifyDocument != nil {
		docs[first(h.VerifyDocumentName, DefaultVerifyDocumentName)] = h.VerifyDocument
	}
	return docs
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Install sets the hooks on a stand-in, and has it check SendCommand's
// document and parameters as SSM does (InvalidParameters) before anything runs.
func (h *Hooks) Install(s *awslocal.Server) {
	s.Documents = h.documents()
	s.RunCommand = h.RunCommand
	s.OnSnapshot = h.OnSnapshot
	s.OnDeleteSnapshot = h.OnDeleteSnapshot
	s.VolumeHooks = awslocal.VolumeHooks{
		OnCreateVolume: h.OnCreateVolume, OnAttachVolume: h.OnAttachVolume,
		OnDetachVolume: h.OnDetachVolume, OnDeleteVolume: h.OnDeleteVolume,
	}
}

// OnDeleteSnapshot removes the snapshot's image, as retention deleting an EBS
// snapshot frees its storage. A snapshot with no image here (e.g. the root
// volume's) has nothing to free.
func (h *Hooks) OnDeleteSnapshot(ctx context.Context, snapshotID, volumeID string) error {
	if strings.ContainsAny(snapshotID, "/.") {
		return fmt.Errorf("delete snapshot %s: bad id", snapshotID)
	}
	if err := os.Remove(h.SnapshotPath(snapshotID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete snapshot %s: %w", snapshotID, err)
	}
	h.mu.Lock()
	delete(h.clones, snapshotID)
	h.mu.Unlock()
	return nil
}

// RunCommand renders the document with the invocation's parameters and runs
// it with bash, like the SSM Agent's aws:runShellScript plugin.
func (h *Hooks) RunCommand(ctx context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	run := CommandRun{Invocation: inv, Started: time.Now()}
	run.Result = h.run(ctx, inv)
	run.Ended = time.Now()
	h.mu.Lock()
	h.runs = append(h.runs, run)
	h.mu.Unlock()
	if h.OnCommand != nil {
		h.OnCommand(run)
	}
	return run.Result
}

func (h *Hooks) run(ctx context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	docs := h.documents()
	doc := docs[inv.DocumentName]
	if doc == nil {
		return failed(1, fmt.Sprintf("awslocal: document %q is not served here (only %s)", inv.DocumentName, strings.Join(sortedNames(docs), ", ")))
	}
	params := map[string]string{}
	for k, v := range inv.Parameters {
		if len(v) != 1 {
			return failed(1, fmt.Sprintf("awslocal: parameter %s has %d values, the document's String parameters take one", k, len(v)))
		}
		params[k] = v[0]
	}
	script, env, err := doc.Render(params)
	if err != nil {
		// SSM itself would refuse SendCommand with InvalidParameters; the
		// stand-in reports it as a failed command so the Lambda sees it.
		return failed(1, "awslocal: "+err.Error())
	}
	limit := h.MaxCommandTime
	if limit <= 0 {
		limit = 15 * time.Minute
		if inv.TimeoutSeconds > 0 {
			limit = time.Duration(inv.TimeoutSeconds) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(scriptEnv(os.Environ(), h.BinDir, h.Env), env...)
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	grace := h.StdoutGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	cmd.WaitDelay = grace
	err = cmd.Run()
	res := awslocal.CommandResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrWaitDelay):
		res.Status, res.ResponseCode = "Failed", 1
		res.Stderr += fmt.Sprintf("\nawslocal: the script exited but its output pipes stayed open for %s (a detached child inherited stdout/stderr)", grace)
	case ctx.Err() == context.DeadlineExceeded:
		res.Status, res.ResponseCode = "TimedOut", -1
	case errors.As(err, &exitErr):
		res.ResponseCode = exitErr.ExitCode()
		res.Status = "Failed"
	case err != nil:
		return failed(1, "awslocal: run bash: "+err.Error())
	default:
		res.Status = "Success"
	}
	return res
}

func sortedNames(docs map[string]*ssmdoc.Document) []string {
	var out []string
	for n := range docs {
		out = append(out, strconv.Quote(n))
	}
	sort.Strings(out)
	return out
}

func failed(code int, msg string) awslocal.CommandResult {
	return awslocal.CommandResult{Status: "Failed", ResponseCode: code, Stderr: msg + "\n"}
}

// scriptEnv is the inherited environment with binDir first on PATH (so the
// freshly built hostagent wins over any installed one) and any SSM_* variables
// of our own environment removed (only the rendered ones may reach the script).
func scriptEnv(environ []string, binDir string, extra []string) []string {
	out := make([]string, 0, len(environ)+len(extra)+1)
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range environ {
		switch {
		case strings.HasPrefix(kv, "PATH="):
			path = strings.TrimPrefix(kv, "PATH=")
		case strings.HasPrefix(kv, "SSM_"):
		default:
			out = append(out, kv)
		}
	}
	if binDir != "" {
		path = binDir + ":" + path
	}
	out = append(out, "PATH="+path)
	return append(out, extra...)
}

// ImagePath is where a volume's image lives in the pool.
func (h *Hooks) ImagePath(volumeID string) string {
	return filepath.Join(h.PoolDir, volumeID+".img")
}

// SnapshotPath is where a snapshot's image is written.
func (h *Hooks) SnapshotPath(snapshotID string) string {
	return filepath.Join(h.PoolDir, snapshotID+".img")
}

// OnSnapshot copies the volume's image to the snapshot's (FICLONE, else a
// plain copy whose time is reported separately in Clone.Duration).
func (h *Hooks) OnSnapshot(ctx context.Context, instanceID, volumeID, snapshotID string) error {
	if strings.ContainsAny(volumeID, "/.") || strings.ContainsAny(snapshotID, "/.") {
		return fmt.Errorf("snapshot %s of %s: bad id", snapshotID, volumeID)
	}
	src, dst := h.ImagePath(volumeID), h.SnapshotPath(snapshotID)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("snapshot of %s: no image for this volume in %s: %w", volumeID, h.PoolDir, err)
	}
	at := time.Now()
	res, err := pool.Clone(src, dst)
	if err != nil {
		return fmt.Errorf("snapshot %s of %s: %w", snapshotID, volumeID, err)
	}
	h.mu.Lock()
	if h.clones == nil {
		h.clones = map[string]Clone{}
	}
	h.clones[snapshotID] = Clone{SnapshotID: snapshotID, VolumeID: volumeID, InstanceID: instanceID, Path: dst, CloneResult: res, At: at}
	h.mu.Unlock()
	return nil
}

// Clones returns the snapshot copies made so far, keyed by snapshot id.
func (h *Hooks) Clones() map[string]Clone {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]Clone, len(h.clones))
	for k, v := range h.clones {
		out[k] = v
	}
	return out
}

// Runs returns every command run so far, in completion order.
func (h *Hooks) Runs() []CommandRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]CommandRun(nil), h.runs...)
}

// DemoInstance seeds the demo's instance: tagged for quiesce, SSM online,
// with a root volume (never snapshotted: it has no image) and the data
// volume. Tags may add quiesce:role=verifier: the machine then also verifies
// its own snapshots, as a separate verifier instance would.
func DemoInstance(instanceID, dataVolumeID string, tags map[string]string) awslocal.Instance {
	all := map[string]string{"Name": "quiesce-demo", "quiesce:enabled": "true"}
	for k, v := range tags {
		all[k] = v
	}
	return awslocal.Instance{
		ID:             instanceID,
		Tags:           all,
		RootDeviceName: "/dev/xvda",
		BlockDevices: []awslocal.BlockDevice{
			{DeviceName: "/dev/xvda", VolumeID: "vol-0de30000000000001", SizeGiB: 8},
			{DeviceName: "/dev/xvdf", VolumeID: dataVolumeID, SizeGiB: 1},
		},
		PingStatus: "Online",
	}
}
