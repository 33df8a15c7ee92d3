package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	rpt "github.com/quiesce/quiesce/test/demo/report"
)

// BenchOptions configure `demo bench`.
type BenchOptions struct {
	Config
	Cycles          int
	ReportFile      string
	SSMLatency      time.Duration // injected each way: delivery (SendCommand → script) and result (script → visible)
	SnapshotLatency time.Duration // injected on CreateSnapshot(s)
	// Pause between measurements so one method's stall never overlaps the next.
	Pause time.Duration
	// HotRowWriters/HotRowCycles: after the main comparison, a few cycles of
	// (a) and (b) with this many writers contending on the transfer sequence
	// row, where FTWRL deadlocks against InnoDB row locks (0 cycles: skip).
	HotRowWriters int
	HotRowCycles  int
	// SeedLockTimeout bounds the seed script's wait for FTWRL; when it
	// expires the script ends its session, which withdraws the FTWRL.
	SeedLockTimeout time.Duration
	// VerifyRuns: verifications of one snapshot through the Lambda's verify
	// action (0: skip); GoBenchFile: `go test -bench` output whose
	// BenchmarkVerifyOverhead lines the report quotes.
	VerifyRuns  int
	GoBenchFile string
}

// Sample is one measured freeze/snapshot/thaw of one method.
type Sample struct {
	Start, End time.Time     // the window as the method defines it (see report)
	Window     time.Duration // End − Start
	Held       time.Duration // start → everything held (lock + freeze)
	Release    time.Duration // ReleaseAt → first commit lands ("writes flowing")
	ReleaseAt  time.Time     // when the release (thaw/unlock) began
	Copy       time.Duration // the snapshot copy inside the window
	Injected   time.Duration // injected AWS latency inside the window (Lambda cycles)
	Stall      time.Duration // slowest writer commit overlapping the window
	Err        string        `json:",omitempty"`
	LockMode   string        `json:",omitempty"` // hostagent's lock (a)
}

// Method is one measured approach.
type Method struct {
	Key, Name string
	Samples   []Sample
}

// BenchResult is the report's data.
type BenchResult struct {
	Machine Machine
	Lambda  string
	Writers int
	Cycles  int
	Methods []*Method // quiesce-direct, seed, lambda
	// HotRow: the same (a) and (b) with HotRowWriters writers on the hot row.
	HotRow          []*Method
	HotRowWriters   int
	HotRowWriter    WriterStats
	SeedLockTimeout time.Duration
	LockMode        string       // the lock hostagent's auto mode chose
	Verify          *VerifyBench `json:",omitempty"`
	Writer          WriterStats
	Markdown        string
	StartedAt       time.Time
}

// Failed reports whether any measurement failed.
func (b *BenchResult) Failed() bool {
	if b.Verify.firstFailure() != nil {
		return true
	}
	for _, m := range b.Methods {
		for _, s := range m.Samples {
			if s.Err != "" {
				return true
			}
		}
	}
	return false
}

// Bench is `demo bench`: the three methods interleaved, cycle by cycle, on
// the same MariaDB and writer.
func Bench(ctx context.Context, o BenchOptions) (res *BenchResult, err error) {
	if o.Cycles <= 0 {
		o.Cycles = 50
	}
	if o.Pause <= 0 {
		o.Pause = 300 * time.Millisecond
	}
	if o.SeedLockTimeout <= 0 {
		o.SeedLockTimeout = 10 * time.Second
	}
	if o.HotRowWriters <= 0 {
		o.HotRowWriters = 4
	}
	res = &BenchResult{StartedAt: time.Now(), Cycles: o.Cycles, SeedLockTimeout: o.SeedLockTimeout}
	env, err := Setup(ctx, o.Config)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := env.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if b, jerr := json.MarshalIndent(res, "", "  "); jerr == nil {
			_ = os.WriteFile(filepath.Join(env.Cfg.WorkDir, "bench-result.json"), b, 0o644)
		}
	}()
	res.Machine = DescribeMachine(env.Version)
	res.Lambda = env.Lambda.Mode
	res.Writers = env.Cfg.Writers

	seedScript := filepath.Join(env.Cfg.WorkDir, "seed-baseline.sh")
	if err := os.WriteFile(seedScript, []byte(demodata.SeedBaselineScript), 0o755); err != nil {
		return res, err
	}
	direct := &Method{Key: "a", Name: "quiesce hostagent (direct CLI)"}
	seed := &Method{Key: "b", Name: "seed recipe (FTWRL session + xfs_freeze, demo/seed-baseline.sh)"}
	lambda := &Method{Key: "c", Name: fmt.Sprintf("full cycle: Lambda (%s) + stand-in + SSM doc + hostagent, injected SSM %s each way, snapshot %s", env.Lambda.Mode, o.SSMLatency, o.SnapshotLatency)}
	res.Methods = []*Method{direct, seed, lambda}

	// Injected AWS latencies apply to the Lambda cycles only (the others do not use the stand-in).
	env.AWS.CommandDelay, env.AWS.ResultDelay = o.SSMLatency, o.SSMLatency
	env.AWS.SetLatency("CreateSnapshots", o.SnapshotLatency)
	env.AWS.SetLatency("CreateSnapshot", o.SnapshotLatency)

	session := randHex(6)
	seedTimeout := strconv.Itoa(int(o.SeedLockTimeout.Round(time.Second) / time.Second))
	if err := env.benchInterleaved(ctx, o, res, session, seedScript, seedTimeout); err != nil {
		return res, err
	}
	if o.HotRowCycles > 0 {
		if err := env.benchHotRow(ctx, o, res, session, seedScript, seedTimeout); err != nil {
			return res, err
		}
	}
	if o.VerifyRuns > 0 {
		if res.Verify, err = env.benchVerify(ctx, o.VerifyRuns, fmt.Sprintf("bench-%s-v", session)); err != nil {
			return res, fmt.Errorf("bench verify: %w", err)
		}
	}
	return res, env.writeBenchReport(o, res)
}

// benchInterleaved runs the three methods cycle by cycle (a, b, c, a, …)
// with the same writer.
func (e *Env) benchInterleaved(ctx context.Context, o BenchOptions, res *BenchResult, session, seedScript, seedTimeout string) error {
	direct, seed, lambda := res.Methods[0], res.Methods[1], res.Methods[2]
	e.logf("\nbench    %d cycles of each method, interleaved, %d writers", o.Cycles, e.Cfg.Writers)
	commits, wrote, err := e.underLoad(ctx, e.Cfg.Writers, func() error {
		for i := 1; i <= o.Cycles; i++ {
			err := sampleEach(ctx, o.Pause,
				sampler{direct, func() Sample { return e.benchDirect(ctx, fmt.Sprintf("bench-%s-a%03d", session, i)) }},
				sampler{seed, func() Sample {
					return e.benchSeed(ctx, seedScript, seedTimeout, fmt.Sprintf("snap-bench%s-b%03d", session, i))
				}},
				sampler{lambda, func() Sample {
					return e.benchLambda(ctx, i, fmt.Sprintf("bench-%s-c%03d", session, i), o.SSMLatency, o.SnapshotLatency)
				}})
			if err != nil {
				return err
			}
			if i%10 == 0 || i == o.Cycles {
				e.logf("bench    %d/%d  last: direct %s ms, seed %s ms, lambda %s ms", i, o.Cycles,
					rpt.Ms(last(direct).Window), rpt.Ms(last(seed).Window), rpt.Ms(last(lambda).Window))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Writer = writerStats(e.Writer, commits, wrote, nil)
	finishSamples(res.Methods, commits)
	for _, s := range res.Methods[0].Samples {
		if s.LockMode != "" {
			res.LockMode = s.LockMode
			break
		}
	}

	return nil
}

// benchHotRow runs (a) and (b) with o.HotRowWriters writers queuing on the
// transfer sequence row.
func (e *Env) benchHotRow(ctx context.Context, o BenchOptions, res *BenchResult, session, seedScript, seedTimeout string) error {
	res.HotRowWriters = o.HotRowWriters
	e.logf("bench    hot row: %d cycles of (a) and (b) with %d writers queuing on the transfer sequence row (seed FTWRL wait bounded at %s)",
		o.HotRowCycles, o.HotRowWriters, o.SeedLockTimeout)
	hd := &Method{Key: "a", Name: res.Methods[0].Name}
	hs := &Method{Key: "b", Name: res.Methods[1].Name}
	res.HotRow = []*Method{hd, hs}
	hc, wrote, err := e.underLoad(ctx, o.HotRowWriters, func() error {
		for i := 1; i <= o.HotRowCycles; i++ {
			err := sampleEach(ctx, o.Pause,
				sampler{hd, func() Sample { return e.benchDirect(ctx, fmt.Sprintf("bench-%s-ha%03d", session, i)) }},
				sampler{hs, func() Sample {
					return e.benchSeed(ctx, seedScript, seedTimeout, fmt.Sprintf("snap-bench%s-hb%03d", session, i))
				}})
			if err != nil {
				return err
			}
			e.logf("bench    hot row %d/%d: direct %s ms, seed %s ms %s", i, o.HotRowCycles, rpt.Ms(last(hd).Window), rpt.Ms(last(hs).Window), last(hs).Err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.HotRowWriter = writerStats(e.Writer, hc, wrote, nil)
	finishSamples(res.HotRow, hc)
	return nil
}

// writeBenchReport renders the markdown (quoting BenchmarkVerifyOverhead
// from o.GoBenchFile), prints it and writes o.ReportFile.
func (e *Env) writeBenchReport(o BenchOptions, res *BenchResult) error {
	if o.GoBenchFile != "" && res.Verify != nil {
		var err error
		if res.Verify.GoBench, err = ReadGoBench(o.GoBenchFile); err != nil {
			return err
		}
	}
	res.Markdown = BenchMarkdown(res)
	fmt.Fprintln(e.Cfg.Out)
	fmt.Fprint(e.Cfg.Out, res.Markdown)
	if o.ReportFile == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(o.ReportFile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.ReportFile, []byte(res.Markdown), 0o644); err != nil {
		return err
	}
	e.logf("\nreport   written to %s", o.ReportFile)
	return nil
}

// finishSamples fills in what needs the writer's full commit record: the
// stall overlapping each window and when writes flowed again.
func finishSamples(methods []*Method, commits []bank.Commit) {
	for _, m := range methods {
		for i := range m.Samples {
			s := &m.Samples[i]
			if s.Start.IsZero() {
				continue
			}
			s.Stall = bank.StallDuring(commits, s.Start, s.End).Max
			if c, ok := bank.FirstCommitAfter(commits, s.ReleaseAt); ok && !s.ReleaseAt.IsZero() {
				s.Release = c.End.Sub(s.ReleaseAt)
			}
		}
	}
}

func last(m *Method) Sample {
	if len(m.Samples) == 0 {
		return Sample{}
	}
	return m.Samples[len(m.Samples)-1]
}

// benchDirect: hostagent freeze (lock + FIFREEZE, hold handed to holder) →
// the same FICLONE copy → hostagent thaw. Window = freeze command start →
// thaw command returned.
func (e *Env) benchDirect(ctx context.Context, runID string) Sample {
	var s Sample
	snap := filepath.Join(e.Pool.Dir, "snap-"+runID+".img")
	defer os.Remove(snap)
	s.Start = time.Now()
	out, code, err := e.Hostagent(ctx, "freeze", "--mount", e.Vol.Dir, "--mysql-defaults-file", e.DefaultsFile,
		"--mysql-lock", "auto", "--timeout", "30s", "--run-id", runID)
	if err != nil {
		s.Err = fmt.Sprintf("freeze exit %d: %v", code, err)
		return s
	}
	var fr contract.FreezeReport
	if err := json.Unmarshal(out, &fr); err != nil {
		s.Err = "freeze report: " + err.Error()
		e.Hostagent(ctx, "thaw", "--run-id", runID) //nolint:errcheck // best effort after a bad report
		return s
	}
	s.Held = time.Since(s.Start)
	s.LockMode = fr.Lock.Mode
	cr, cerr := pool.Clone(e.Vol.Image, snap)
	s.Copy = cr.Duration
	releaseBegan := time.Now()
	_, code, err = e.Hostagent(ctx, "thaw", "--run-id", runID)
	s.End = time.Now()
	s.Window = s.End.Sub(s.Start)
	s.ReleaseAt = releaseBegan
	if cerr != nil {
		s.Err = "copy: " + cerr.Error()
	}
	if err != nil {
		s.Err = fmt.Sprintf("thaw exit %d: %v", code, err)
	}
	return s
}

// benchSeed runs demo/seed-baseline.sh once. Window = FLUSH TABLES WITH READ
// LOCK sent → UNLOCK TABLES answered, as the script measures it.
func (e *Env) benchSeed(ctx context.Context, script, lockTimeout, snapID string) Sample {
	var s Sample
	snap := filepath.Join(e.Pool.Dir, snapID+".img")
	defer os.Remove(snap)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "bash", script, "--defaults-file", e.DefaultsFile, "--mount", e.Vol.Dir,
		"--source", e.Vol.Image, "--dest", snap, "--timeout", lockTimeout)
	// SIGTERM first so the script's trap thaws and ends its session; SIGKILL after 5 s.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	if err := cmd.Run(); err != nil {
		// Keep the failed attempt's span: the writer was blocked through it.
		s.Start, s.End = started, time.Now()
		s.Window = s.End.Sub(s.Start)
		s.Err = fmt.Sprintf("seed-baseline.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
		_, _ = fsfreeze.Thaw(e.Vol.Dir) // the script's trap thaws; make sure
		return s
	}
	kv := parseKV(stdout.String())
	startUS, err1 := strconv.ParseInt(kv["start_us"], 10, 64)
	endUS, err2 := strconv.ParseInt(kv["end_us"], 10, 64)
	if err1 != nil || err2 != nil {
		s.Err = fmt.Sprintf("seed-baseline.sh printed %q", stdout.String())
		return s
	}
	s.Start, s.End = time.UnixMicro(startUS), time.UnixMicro(endUS)
	s.Window = s.End.Sub(s.Start)
	s.Held = msKV(kv, "lock_ms") + msKV(kv, "freeze_ms")
	s.Copy = msKV(kv, "copy_ms")
	s.ReleaseAt = s.End.Add(-(msKV(kv, "thaw_ms") + msKV(kv, "unlock_ms")))
	return s
}

func parseKV(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

func msKV(kv map[string]string, k string) time.Duration {
	v, err := strconv.ParseFloat(kv[k], 64)
	if err != nil {
		return 0
	}
	return time.Duration(v * float64(time.Millisecond))
}

// benchLambda runs one full cycle through the Lambda with injected latencies.
// Window = hostagent freeze start → thaw done (hostagent's reports).
func (e *Env) benchLambda(ctx context.Context, n int, runID string, ssm, snapLat time.Duration) Sample {
	var s Sample
	c := e.RunCycle(ctx, n, runID)
	for _, sn := range c.Snapshots {
		os.Remove(sn.Image)
	}
	if !c.OK() {
		s.Err = strings.Join(c.Problems, "; ")
	}
	if c.Freeze == nil || c.Thaw == nil {
		return s
	}
	s.Start, s.End = c.Freeze.StartedAt, c.Thaw.ThawedAt
	s.Window = c.Window
	s.Held = time.Duration(c.Freeze.HeldMS * float64(time.Millisecond))
	s.Copy = c.CopyTime
	// Inside the window: the freeze result's visibility delay, the snapshot
	// call, the thaw command's delivery delay.
	s.Injected = ssm + snapLat + ssm
	s.ReleaseAt = c.ThawStarted
	return s
}
