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
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
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
	Deadline     time.Time `json:"deadline"`
	DeadlineMono int64     `json:"deadline_mono"`
	// DeadlineFinal is false while only the client's upper bound is known.
	DeadlineFinal bool      `json:"deadline_final"`
	LockStartedAt time.Time `json:"lock_started_at,omitzero"`
	// Freezing: the holder holds its lock and is about to freeze (recorded
	// before the first FIFREEZE). A run still starting without it froze
	// nothing, so whoever ends it leaves the mounts alone.
	Freezing     bool      `json:"freezing,omitempty"`
	FrozenAt     time.Time `json:"frozen_at,omitzero"`
	Client       Proc      `json:"client"`
	Holder       Proc      `json:"holder"`
	Guardian     Proc      `json:"guardian"`
	ConnectionID uint64    `json:"connection_id,omitempty"`
	TimerUnit    string    `json:"timer_unit,omitempty"`
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
	target := d.file(r.RunID)
	if !r.Active() {
		if err := os.MkdirAll(filepath.Join(d.Path, doneDir), 0o700); err != nil {
			return fmt.Errorf("state write %s: %w", r.RunID, err)
		}
		target = d.doneFile(r.RunID)
	}
	f, err := os.CreateTemp(filepath.Dir(target), ".tmp-"+r.RunID+"-*")
	if err != nil {
		return fmt.Errorf("state write %s: %w", r.RunID, err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state write %s: %w", r.RunID, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state write %s: %w", r.RunID, err)
	}
	if !r.Active() {
		if err := os.Remove(d.file(r.RunID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state write %s: %w", r.RunID, err)
		}
	} else {
		// A reused id (after a failed run) must not leave an older finished record behind.
		os.Remove(d.doneFile(r.RunID))
	}
	return nil
}

// Read loads one run; ErrNotFound if there is none.
func (d *Dir) Read(id string) (*Run, error) {
	path := d.file(id)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		path = d.doneFile(id)
		data, err = os.ReadFile(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
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
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // finished and moved meanwhile
		}
		var r Run
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Errorf("state %s: %w", name, err))
			continue
		}
		runs = append(runs, &r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	return runs, errors.Join(errs...)
}

// Remove deletes a run's files (state, socket, log).
func (d *Dir) Remove(id string) {
	os.Remove(d.file(id))
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
	top, _ := os.ReadDir(d.Path)
	for _, e := range top {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if info, err := e.Info(); err == nil && info.ModTime().Before(time.Now().Add(-time.Minute)) {
				os.Remove(filepath.Join(d.Path, e.Name()))
			}
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
	start, _, err := procStat(pid)
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
	start, st, err := procStat(p.PID)
	if err != nil {
		return false
	}
	return start == p.Start && st != 'Z' && st != 'X'
}

func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); starttime is field 22 → f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return start, f[0][0], nil
}

// MonoNow is CLOCK_MONOTONIC in ns, shared by all processes on the machine.
func MonoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// UntilMono is the duration from now until the monotonic instant mono.
func UntilMono(mono int64) time.Duration { return time.Duration(mono - MonoNow()) }
