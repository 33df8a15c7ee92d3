// Package state keeps one JSON file per run in the state directory
// (/run/quiesce: tmpfs, 0700, files 0600, written atomically by rename), so
// every hostagent process — client, holder, guardian, a later invocation —
// can see what is held, by whom, and until when.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/procstat"
)

// DefaultDir is the production state directory. Tests override it with
// --state-dir or the EnvDir variable so they never touch a real run.
const (
	DefaultDir = "/run/quiesce"
	EnvDir     = "QUIESCE_STATE_DIR"
)

// Run statuses.
const (
	StatusStarting = "starting" // client validated and reserved the mounts; holder locking/freezing
	StatusHeld     = "held"     // everything frozen and locked
	StatusThawed   = "thawed"   // thawed and unlocked (see Thaw.ThawedBy)
	StatusFailed   = "failed"   // freeze failed and was undone; nothing held
)

// RunIDPattern is the run id syntax (contract.RunIDPattern).
const RunIDPattern = contract.RunIDPattern

// ValidRunID reports whether id matches RunIDPattern.
func ValidRunID(id string) bool { return contract.ValidRunID(id) }

// ErrNotFound is returned by Read for an unknown run id.
var ErrNotFound = errors.New("no such run")

// ErrFull: the state dir has no space or no inodes left (ENOSPC, EDQUOT).
// Its text completes "state dir <path> ...".
var ErrFull = errors.New("full (no space or inodes left)")

// Full marks an error that ran out of space or inodes in the state dir at
// path as ErrFull (keeping the original); other errors are returned as they are.
func Full(path string, err error) error {
	if err != nil && !errors.Is(err, ErrFull) && (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return fmt.Errorf("state dir %s %w: %w", path, ErrFull, err)
	}
	return err
}

// Mount is one mount of a run, as validated by preflight.
type Mount struct {
	Path       string   `json:"path"`
	FSType     string   `json:"fstype"`
	Device     string   `json:"device"`
	Dev        uint64   `json:"dev"`
	MajMin     uint64   `json:"maj_min"`
	VolumeIDs  []string `json:"volume_ids"`
	EC2Devices []string `json:"ec2_devices,omitempty"`
}

// MySQL mirrors mysqllock.Options (no secrets: the password stays in the
// defaults file) so the holder, started later, locks exactly as requested.
type MySQL struct {
	Mode            string        `json:"mode"`
	DefaultsFile    string        `json:"defaults_file,omitempty"`
	Socket          string        `json:"socket,omitempty"`
	User            string        `json:"user,omitempty"`
	Explicit        bool          `json:"explicit"`
	LockWait        time.Duration `json:"lock_wait"`
	LongQueryLimit  time.Duration `json:"long_query_limit"`
	KillLongQueries bool          `json:"kill_long_queries"`
}

// Proc identifies a process across pid reuse by its start time.
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc/<pid>/stat starttime, clock ticks since boot
}

// Run is the state file of one run.
type Run struct {
	RunID    string  `json:"run_id"`
	Status   string  `json:"status"`
	Mounts   []Mount `json:"mounts"`
	MySQL    MySQL   `json:"mysql"`
	LockMode string  `json:"lock_mode"`
	// LockRequested is --mysql-lock as given (e.g. auto); LockMode is what it resolved to.
	LockRequested string        `json:"lock_requested,omitempty"`
	Timeout       time.Duration `json:"timeout"`
	StartedAt     time.Time     `json:"started_at"`
	// StartMono is the client's start (CLOCK_MONOTONIC ns), for held_ms.
	StartMono  int64  `json:"start_mono"`
	InstanceID string `json:"instance_id,omitempty"`
	// ExpediteRCU: switch the kernel to expedited RCU grace periods while freezing.
	ExpediteRCU bool `json:"expedite_rcu,omitempty"`
	// RCURestore: the holder found expedited RCU off and switches it on for
	// the freezes; until it records that it switched it back, whoever ends the
	// run (guardian, client, thaw, recovery) must switch it off again.
	RCURestore bool `json:"rcu_restore,omitempty"`
	// Deadline is wall time for reports; DeadlineMono (CLOCK_MONOTONIC ns, the
	// same clock in every process) is what timers use, immune to clock steps.
	// The rules that set and read them are in hold/deadline.go.
	Deadline     time.Time `json:"deadline"`
	DeadlineMono int64     `json:"deadline_mono"`
	// DeadlineFinal is false while only the client's upper bound is known.
	DeadlineFinal bool      `json:"deadline_final"`
	LockStartedAt time.Time `json:"lock_started_at,omitzero"`
	// Freezing: the holder holds its lock and is about to freeze (recorded
	// before the first FIFREEZE). A run still starting without it froze
	// nothing, so whoever ends it leaves the mounts alone.
	Freezing bool `json:"freezing,omitempty"`
	// ThawPending names the mounts whose FITHAW did not return in time
	// (blocked in the kernel, e.g. behind another frozen filesystem). The run
	// stays active so that the guardian, recovery and thaw retry them: it is
	// never recorded finished while a thaw is outstanding.
	ThawPending  []string  `json:"thaw_pending,omitempty"`
	FrozenAt     time.Time `json:"frozen_at,omitzero"`
	Client       Proc      `json:"client"`
	Holder       Proc      `json:"holder"`
	Guardian     Proc      `json:"guardian"`
	ConnectionID uint64    `json:"connection_id,omitempty"`
	// LockLost: the holder's watch found the MySQL lock gone during the hold.
	LockLost  *contract.LockLoss `json:"lock_lost,omitempty"`
	TimerUnit string             `json:"timer_unit,omitempty"`
	// ReplicaAppliers (lock mode replica) are the replication channels whose
	// applier the holder stopped. Unlike a lock they do not start again when
	// the holder's connection closes: until the run records them started
	// (cleared), whoever ends it (guardian, client, thaw, recovery) starts them.
	ReplicaAppliers []string `json:"replica_appliers,omitempty"`

	Freeze *contract.FreezeReport `json:"freeze,omitempty"`
	Thaw   *contract.ThawReport   `json:"thaw,omitempty"`
	Error  string                 `json:"error,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
}

// Active reports whether the run holds (or is about to hold) its mounts.
func (r *Run) Active() bool { return r.Status == StatusStarting || r.Status == StatusHeld }

// Dir is an opened state directory.
type Dir struct {
	Path string
}

// Resolve picks the state dir: flag value, else $QUIESCE_STATE_DIR, else DefaultDir.
func Resolve(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := os.Getenv(EnvDir); v != "" {
		return v
	}
	return DefaultDir
}

// maxDirLen keeps <dir>/<socket name> under sun_path's 108 bytes.
const maxDirLen = 107 - 1 - 16 - len(".sock")

// Open creates the directory 0700 if needed and refuses one that is not a real
// directory, is too long for the holder's unix socket, or is not private.
func Open(path string) (*Dir, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, fmt.Errorf("state dir %q: must be an absolute clean path", path)
	}
	if len(path) > maxDirLen {
		return nil, fmt.Errorf("state dir %q: longer than %d bytes (unix socket path limit)", path, maxDirLen)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("state dir %q: not a directory", path)
	}
	// Whoever owns the directory can forge runs and sockets: it must be us.
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("state dir %q: owned by uid %d, not by us (uid %d)", path, sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(path, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	return &Dir{Path: path}, nil
}

// Active runs live at the top of the directory, finished ones (thawed,
// failed) under done/: the paths every invocation walks (recovery, the busy
// check) then read only what can still be held, however many runs are kept.
const doneDir = "done"

func (d *Dir) file(id string) string     { return filepath.Join(d.Path, id+".json") }
func (d *Dir) doneFile(id string) string { return filepath.Join(d.Path, doneDir, id+".json") }

// copySuffix names an active run's redundant copy, <id>.json.copy. Every
// write of an active record writes the copy too (the holder writes before its
// first FIFREEZE, so the copy always names what a run may have frozen), and
// a finished record removes it. When the record itself is unreadable
// (truncated, garbled, removed by hand), Read and the lists fall back to the
// copy, so thaw and recovery still find the mounts: an unreadable record
// means "thaw what the copy names", never "skip".
const copySuffix = ".json.copy"

func (d *Dir) copyFile(id string) string { return filepath.Join(d.Path, id+copySuffix) }

// SocketPath is the holder's unix socket. Named by a hash of the run id, since
// a 64-character id would not fit sun_path under a longer state dir.
func (d *Dir) SocketPath(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(d.Path, hex.EncodeToString(sum[:8])+".sock")
}
func (d *Dir) LogPath(id string) string { return filepath.Join(d.Path, id+".log") }

// Lock takes the directory's exclusive flock, waiting at most wait. Every
// read-check-write sequence that decides ownership (busy check + reservation,
// recovery) runs under it.
func (d *Dir) Lock(wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(d.Path, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("state lock %s: %w", d.Path, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Write stores r atomically (temp file + rename). No fsync: the directory is
// tmpfs in production and its content means nothing after a reboot (nothing is
// frozen then); rename alone makes every reader see a whole file. A finished
// run is written under done/ first and only then removed from the top, so a
// reader always finds one complete record.
func (d *Dir) Write(r *Run) error {
	if !ValidRunID(r.RunID) {
		return fmt.Errorf("state: bad run id %q", r.RunID)
	}
	r.UpdatedAt = time.Now().UTC()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if !r.Active() {
		return d.writeFinished(r, data)
	}
	if err := writeAtomic(d.file(r.RunID), r.RunID, data); err != nil {
		return fmt.Errorf("state write %s: %w", r.RunID, Full(d.Path, err))
	}
	// A reused id (after a failed run) must not leave an older finished record behind.
	os.Remove(d.doneFile(r.RunID))
	if err := writeAtomic(d.copyFile(r.RunID), r.RunID, data); err != nil {
		return fmt.Errorf("state write %s (copy): %w", r.RunID, Full(d.Path, err))
	}
	return nil
}

// writeFinished stores a finished run under done/ and then removes its active
// record and copy. If it cannot be stored (the dir is full, say), the active
// files are removed all the same and the error says so: a finished run left
// recorded as active would hold its mounts busy for every later freeze and
// have recovery thaw them again, perhaps under a newer run. What is lost is
// only the repeatable report of a run that holds nothing.
func (d *Dir) writeFinished(r *Run, data []byte) error {
	err := os.MkdirAll(filepath.Join(d.Path, doneDir), 0o700)
	if err == nil {
		err = writeAtomic(d.doneFile(r.RunID), r.RunID, data)
	}
	os.Remove(d.copyFile(r.RunID))
	if rerr := os.Remove(d.file(r.RunID)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return fmt.Errorf("state write %s: %w", r.RunID, errors.Join(Full(d.Path, err), rerr))
	}
	if err != nil {
		return fmt.Errorf("state write %s: %w; its active record was removed, the run is over", r.RunID, Full(d.Path, err))
	}
	return nil
}

// Discard removes an active run's record and copy: for a reservation that
// could not be completed (nothing was started for it).
func (d *Dir) Discard(id string) {
	os.Remove(d.file(id))
	os.Remove(d.copyFile(id))
}

// writeAtomic writes data to target through a temp file and a rename.
func writeAtomic(target, id string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(target), ".tmp-"+id+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Read loads one run; ErrNotFound if there is none. An active record that
// cannot be read or parsed is read from its copy (see copySuffix); only if
// that fails too is the record's own error returned.
func (d *Dir) Read(id string) (*Run, error) {
	path := d.file(id)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		path = d.doneFile(id)
		data, err = os.ReadFile(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		if r, cerr := readRun(d.copyFile(id)); cerr == nil && r.Active() {
			return r, nil // the record was removed by hand: the copy stands
		}
		return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		if path == d.file(id) {
			if c, cerr := readRun(d.copyFile(id)); cerr == nil {
				return c, nil
			}
		}
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return &r, nil
}

func readRun(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("state %s: %w", filepath.Base(path), err)
	}
	return &r, nil
}

// Active loads the runs that may hold something (status starting or held),
// oldest first. Unreadable files are skipped and returned as errors.
func (d *Dir) Active() ([]*Run, error) {
	runs, err := d.load(d.Path)
	var active []*Run
	for _, r := range runs {
		if r.Active() {
			active = append(active, r)
		}
	}
	return active, err
}

// List loads every run, active and finished, oldest first.
func (d *Dir) List() ([]*Run, error) {
	active, err1 := d.load(d.Path)
	done, err2 := d.load(filepath.Join(d.Path, doneDir))
	runs := append(active, done...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	return runs, errors.Join(err1, err2)
}

func (d *Dir) load(dir string) ([]*Run, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var runs []*Run
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		seen[strings.TrimSuffix(name, ".json")] = true
		r, err := readRun(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // finished and moved meanwhile
		}
		if err != nil {
			if c, cerr := readRun(filepath.Join(dir, strings.TrimSuffix(name, ".json")+copySuffix)); cerr == nil {
				r, err = c, nil
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		runs = append(runs, r)
	}
	// A copy without its record: the record was removed by hand.
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), copySuffix)
		if !ok || seen[id] || strings.HasPrefix(id, ".") {
			continue
		}
		if r, err := readRun(filepath.Join(dir, e.Name())); err == nil && r.Active() {
			runs = append(runs, r)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	return runs, errors.Join(errs...)
}

// Remove deletes a run's files (state, socket, log).
func (d *Dir) Remove(id string) {
	os.Remove(d.file(id))
	os.Remove(d.copyFile(id))
	os.Remove(d.doneFile(id))
	os.Remove(d.SocketPath(id))
	os.Remove(d.LogPath(id))
}

// Prune removes finished runs (and their logs) last written before cutoff, by
// file time without parsing them, and stray temp files.
func (d *Dir) Prune(cutoff time.Time) {
	entries, _ := os.ReadDir(filepath.Join(d.Path, doneDir))
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if id, ok := strings.CutSuffix(name, ".json"); ok && !strings.HasPrefix(name, ".") {
			os.Remove(d.doneFile(id))
			os.Remove(d.LogPath(id))
		} else if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(d.Path, doneDir, name))
		}
	}
	d.pruneSockets()
	top, _ := os.ReadDir(d.Path)
	for _, e := range top {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if info, err := e.Info(); err == nil && info.ModTime().Before(time.Now().Add(-time.Minute)) {
				os.Remove(filepath.Join(d.Path, e.Name()))
			}
		}
	}
}

// pruneSockets removes holder sockets left by holders that died without
// removing them (SIGKILL, a crash): those of no active run on which a
// connect is refused, i.e. nobody listens. An active run's socket is kept
// even then: its holder may be between bind and listen. Runs only under the
// state lock (recovery), like the rest of Prune.
func (d *Dir) pruneSockets() {
	socks, _ := filepath.Glob(filepath.Join(d.Path, "*.sock"))
	if len(socks) == 0 {
		return
	}
	active, _ := d.Active()
	keep := make(map[string]bool, len(active))
	for _, r := range active {
		keep[d.SocketPath(r.RunID)] = true
	}
	for _, sock := range socks {
		if keep[sock] {
			continue
		}
		c, err := net.DialTimeout("unix", sock, 100*time.Millisecond)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, unix.ECONNREFUSED) {
			os.Remove(sock)
		}
	}
}

// Self identifies the calling process.
func Self() Proc {
	p, _ := ProcOf(os.Getpid())
	return p
}

// ProcOf reads pid's start time.
func ProcOf(pid int) (Proc, error) {
	start, _, err := procstat.Read(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Start: start}, nil
}

// Alive reports whether the recorded process still runs: same pid, same start
// time (not a reused pid), not a zombie.
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, st, err := procstat.Read(p.PID)
	if err != nil {
		return false
	}
	return start == p.Start && st != 'Z' && st != 'X'
}

// MonoNow is CLOCK_MONOTONIC in ns, shared by all processes on the machine:
// the clock of the records' *Mono fields. What is computed with it (the
// deadlines and their rules) is in hold/deadline.go.
func MonoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// UntilMono is the duration from now until the monotonic instant mono.
func UntilMono(mono int64) time.Duration { return time.Duration(mono - MonoNow()) }
