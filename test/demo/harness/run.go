package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/demo/bank"
	rpt "github.com/quiesce/quiesce/test/demo/report"
)

// RunOptions configure `demo run`.
type RunOptions struct {
	Config
	Cycles   int           // default 5
	Interval time.Duration // between cycle starts (0: back to back)
	// NoVerify skips the verification (not used by make demo).
	NoVerify bool
}

// RunResult is everything `demo run` measured; also written as JSON to the work dir.
type RunResult struct {
	Machine Machine
	Lambda  string // "rie" or "runtime-api"
	Cycles  []*Cycle
	// Verifications: each snapshot through the Lambda's verify action.
	Verifications []Verification
	// Damaged is the deliberately damaged copy's verification (it must fail).
	Damaged *Verification `json:",omitempty"`
	// LeftVolumes are volumes the verify action created and did not delete.
	LeftVolumes []string `json:",omitempty"`
	Writer      WriterStats
	Summary     Summary
	StartedAt   time.Time
	Duration    time.Duration
}

// WriterStats summarizes the writer over the whole run.
type WriterStats struct {
	Commits    int
	Declined   int64
	Errors     int64
	FirstErrs  []string `json:",omitempty"`
	TPS        float64
	MaxStall   time.Duration
	MaxStallAt time.Time
	// MaxStallCycle is the cycle whose window the slowest commit overlapped (0: none).
	MaxStallCycle int
	// MaxStallNote places a stall outside every window relative to the nearest one.
	MaxStallNote string `json:",omitempty"`
}

// Summary is the final table's content.
type Summary struct {
	CyclesOK, CyclesFailed   int
	Window                   rpt.Dist // hostagent: freeze start → thaw done
	WindowExclCopy           rpt.Dist // the same minus the stand-in's snapshot copy
	LambdaWindow             rpt.Dist // Lambda: freeze SendCommand sent → thaw returned
	Frozen                   rpt.Dist // filesystem frozen: frozen_at → thawed_at (the Lambda's window_ms)
	SnapshotCall             rpt.Dist // the Lambda's CreateSnapshot(s) call
	Held                     rpt.Dist // hostagent freeze command: start → everything held
	Copy                     rpt.Dist // snapshot copy in the stand-in
	Reflink                  bool
	StallMinusWindowMax      time.Duration // max over cycles of (writer stall − window)
	Snapshots                int
	VerifiedOK, VerifyFailed int
	// DamagedCaught: the damaged copy was tagged failed, naming the table.
	DamagedCaught bool
	// CreateToVerified: CreateVolume → the quiesce:verified tag (stand-in's clock).
	CreateToVerified rpt.Dist
	Targets          []Target
}

// Target is one of the demo's targets (README "Performance") with the measured value.
type Target struct {
	Name, Want, Got string
	Met             bool
}

// Failed reports whether the run must exit non-zero.
func (r *RunResult) Failed() bool {
	s := r.Summary
	return s.VerifyFailed > 0 || s.CyclesFailed > 0 || s.CyclesOK == 0 || (r.Damaged != nil && !s.DamagedCaught) || len(r.LeftVolumes) > 0
}

// Run is `demo run`: set up, N cycles on a schedule, the verification of
// every snapshot, the summary. The environment is always torn down.
func Run(ctx context.Context, o RunOptions) (res *RunResult, err error) {
	if o.Cycles <= 0 {
		o.Cycles = 5
	}
	if o.Interval < 0 {
		o.Interval = 0 // back to back
	}
	res = &RunResult{StartedAt: time.Now()}
	env, err := Setup(ctx, o.Config)
	if err != nil {
		return nil, err
	}
	defer func() {
		env.logf("cleanup  thaw, stop lambda/stand-in/writer/mariadbd, unmount, detach")
		if cerr := env.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, cerr)
		}
		res.Duration = time.Since(res.StartedAt)
		if b, jerr := json.MarshalIndent(res, "", "  "); jerr == nil {
			_ = os.WriteFile(filepath.Join(env.Cfg.WorkDir, "demo-result.json"), b, 0o644)
		}
		env.logf("kept     the snapshot images snap-*.img inside %s (the next run replaces them) and the results in %s;\n"+
			"         to inspect: mkdir -p /mnt/qpool /mnt/qsnap && mount -o loop %s /mnt/qpool && mount -o loop,ro,norecovery,nouuid /mnt/qpool/snap-….img /mnt/qsnap (read-only: a frozen copy's XFS log is replayed only on a writable mount)",
			env.Pool.Image, filepath.Join(env.Cfg.WorkDir, "demo-result.json"), env.Pool.Image)
	}()
	res.Machine = DescribeMachine(env.Version)
	res.Lambda = env.Lambda.Mode

	session := randHex(6)
	env.logf("\ncycles   %d, one every %s; window = hostagent freeze start → thaw done", o.Cycles, o.Interval)
	commits, wrote, err := env.underLoad(ctx, env.Cfg.Writers, func() error {
		next := time.Now()
		for i := 1; i <= o.Cycles; i++ {
			if err := sleepUntil(ctx, next); err != nil {
				return err
			}
			next = next.Add(o.Interval)
			c := env.RunCycle(ctx, i, fmt.Sprintf("demo-%s-c%02d", session, i))
			res.Cycles = append(res.Cycles, c)
			env.logf("%s", cycleLine(c, o.Cycles))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Writer = writerStats(env.Writer, commits, wrote, res.Cycles)
	for _, c := range res.Cycles {
		if c.Freeze != nil && c.Thaw != nil {
			c.Stall = bank.StallDuring(commits, c.Freeze.StartedAt, c.Thaw.ThawedAt)
		}
	}
	env.logf("writer   %d transfers committed (%.0f/s), %d declined, %d errors, max commit stall %s",
		res.Writer.Commits, res.Writer.TPS, res.Writer.Declined, res.Writer.Errors, rpt.Ms(res.Writer.MaxStall)+" ms")
	for _, e := range res.Writer.FirstErrs {
		env.logf("writer   error: %s", e)
	}

	if !o.NoVerify {
		if err := env.verifyAll(ctx, res, commits, session); err != nil {
			return res, err
		}
	}
	res.Summary = summarize(res)
	env.logf("\n%s", SummaryText(res))
	return res, nil
}

// verifyAll verifies every snapshot through the Lambda's verify action,
// then a deliberately damaged copy of the last one, which must fail.
func (e *Env) verifyAll(ctx context.Context, res *RunResult, commits []bank.Commit, session string) error {
	e.logf("\nverify   every snapshot through the Lambda's verify action (%s): a volume created from it (FICLONE), attached to the\n"+
		"         verifier (this machine, loop device), the QuiesceVerify document runs hostagent verify: a throwaway mariadbd on the copy,\n"+
		"         CHECK TABLE on every table, binlog and GTID against the tags, demo/bank-checks.sql; detached, deleted, snapshot tagged", e.Lambda.Mode)
	var last *CycleSnapshot
	for _, c := range res.Cycles {
		for i := range c.Snapshots {
			s := c.Snapshots[i]
			v := e.Verify(ctx, s.ID, c.RunID)
			var frozeAt time.Time
			if c.Freeze != nil {
				frozeAt = c.Freeze.StartedAt
			}
			judgeSound(&v, frozeAt, commits)
			res.Verifications = append(res.Verifications, v)
			e.logf("%s", verifyLine(v))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if c.OK() {
				last = &c.Snapshots[i]
			}
		}
	}
	if last == nil {
		return nil
	}
	runID := "demo-" + session + "-damaged"
	id, err := e.MakeDamagedSnapshot(ctx, *last, runID)
	d := Verification{SnapshotID: id, RunID: runID, Damaged: true, CreateToTag: -1}
	if err != nil {
		d.problem("make the damaged copy: %v", err)
	} else {
		d = e.Verify(ctx, id, runID)
		d.Damaged = true
		judgeDamaged(&d, DamagedTable)
	}
	res.Damaged = &d
	e.logf("%s", verifyLine(d))
	for _, v := range e.AWS.Volumes() {
		if v.CreatedBy == "CreateVolume" {
			res.LeftVolumes = append(res.LeftVolumes, v.ID)
		}
	}
	if len(res.LeftVolumes) > 0 {
		e.logf("FAIL     the verify action left volumes behind: %s", strings.Join(res.LeftVolumes, ", "))
	}
	return ctx.Err()
}

func writerStats(w *bank.Writer, commits []bank.Commit, elapsed time.Duration, cycles []*Cycle) WriterStats {
	ws := WriterStats{Commits: len(commits), Declined: w.Declined()}
	n, errs := w.Errors()
	ws.Errors = n
	for _, e := range errs {
		ws.FirstErrs = append(ws.FirstErrs, e.Error())
	}
	if elapsed > 0 {
		ws.TPS = float64(len(commits)) / elapsed.Seconds()
	}
	s := bank.MaxStall(commits, time.Time{}, time.Time{})
	ws.MaxStall, ws.MaxStallAt = s.Max, s.At
	begin := s.At.Add(-s.Max)
	nearest := time.Duration(1<<62 - 1)
	for _, c := range cycles {
		if c.Freeze == nil || c.Thaw == nil {
			continue
		}
		if !s.At.Before(c.Freeze.StartedAt) && !begin.After(c.Thaw.ThawedAt) {
			ws.MaxStallCycle = c.N
			continue
		}
		// Distance from the stall to this window, in whichever direction.
		if d := begin.Sub(c.Thaw.ThawedAt); d > 0 && d < nearest {
			nearest, ws.MaxStallNote = d, fmt.Sprintf("began %s ms after cycle %d's thaw", rpt.Ms(d), c.N)
		}
		if d := c.Freeze.StartedAt.Sub(s.At); d > 0 && d < nearest {
			nearest, ws.MaxStallNote = d, fmt.Sprintf("ended %s ms before cycle %d's freeze", rpt.Ms(d), c.N)
		}
	}
	return ws
}

func summarize(res *RunResult) Summary {
	var s Summary
	var win, winEx, lam, frozen, snapCall, held, cp []time.Duration
	s.Reflink = true
	for _, c := range res.Cycles {
		if c.OK() {
			s.CyclesOK++
		} else {
			s.CyclesFailed++
		}
		s.Snapshots += len(c.Snapshots)
		for _, sn := range c.Snapshots {
			if !sn.Reflink {
				s.Reflink = false
			}
		}
		if c.Freeze == nil || c.Thaw == nil {
			continue
		}
		win = append(win, c.Window)
		winEx = append(winEx, c.Window-c.CopyTime)
		cp = append(cp, c.CopyTime)
		held = append(held, time.Duration(c.Freeze.HeldMS*float64(time.Millisecond)))
		if c.LambdaWindowMS >= 0 {
			lam = append(lam, msDur(c.LambdaWindowMS))
		}
		if c.FrozenMS >= 0 {
			frozen = append(frozen, msDur(c.FrozenMS))
		}
		if c.SnapshotCallMS >= 0 {
			snapCall = append(snapCall, msDur(c.SnapshotCallMS))
		}
		if d := c.Stall.Max - c.Window; d > s.StallMinusWindowMax {
			s.StallMinusWindowMax = d
		}
	}
	s.Window, s.WindowExclCopy, s.LambdaWindow = rpt.Summarize(win), rpt.Summarize(winEx), rpt.Summarize(lam)
	s.Frozen, s.SnapshotCall = rpt.Summarize(frozen), rpt.Summarize(snapCall)
	s.Held, s.Copy = rpt.Summarize(held), rpt.Summarize(cp)
	var c2t []time.Duration
	for _, v := range res.Verifications {
		if v.Passed() {
			s.VerifiedOK++
		} else {
			s.VerifyFailed++
		}
		if v.CreateToTag >= 0 {
			c2t = append(c2t, v.CreateToTag)
		}
	}
	s.CreateToVerified = rpt.Summarize(c2t)
	s.DamagedCaught = res.Damaged != nil && res.Damaged.Passed()
	s.Targets = []Target{
		{Name: "write-blocked window p50 (excl. copy, incl. 2 SSM round trips)", Want: "≤ 150 ms",
			Got: rpt.Ms(s.WindowExclCopy.P50) + " ms", Met: s.WindowExclCopy.N > 0 && s.WindowExclCopy.P50 <= 150*time.Millisecond},
		{Name: "writer max stall − window (worst cycle)", Want: "≤ 50 ms",
			Got: rpt.Ms(s.StallMinusWindowMax) + " ms", Met: s.WindowExclCopy.N > 0 && s.StallMinusWindowMax <= 50*time.Millisecond},
		{Name: "verification failures (quiesce:verified≠ok)", Want: "0",
			Got: fmt.Sprintf("%d of %d", s.VerifyFailed, s.VerifiedOK+s.VerifyFailed), Met: s.VerifyFailed == 0 && s.VerifiedOK > 0},
		{Name: "damaged copy: verified=failed naming " + DamagedTable, Want: "caught",
			Got: damagedText(res.Damaged), Met: s.DamagedCaught},
		{Name: "create volume → quiesce:verified p50", Want: "≤ 5000 ms",
			Got: rpt.Ms(s.CreateToVerified.P50) + " ms", Met: s.CreateToVerified.N > 0 && s.CreateToVerified.P50 <= 5*time.Second},
	}
	return s
}

func cycleLine(c *Cycle, total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cycle %2d/%d  %s  ", c.N, total, c.RunID)
	if c.Freeze != nil && c.Thaw != nil {
		fmt.Fprintf(&b, "window %6s ms", rpt.Ms(c.Window))
		if c.LambdaWindowMS >= 0 {
			fmt.Fprintf(&b, " (lambda %s)", rpt.Ms(msDur(c.LambdaWindowMS)))
		}
		fmt.Fprintf(&b, "  held %s  copy %s", rpt.Ms(msDur(c.Freeze.HeldMS)), rpt.Ms(c.CopyTime))
	}
	for _, s := range c.Snapshots {
		fmt.Fprintf(&b, "  %s %s %s:%s", s.ID, s.Tags[TagConsistency], s.Tags[TagBinlogFile], s.Tags[TagBinlogPos])
	}
	if c.Stall.Count > 0 {
		fmt.Fprintf(&b, "  stall %s ms", rpt.Ms(c.Stall.Max))
	}
	if !c.OK() {
		fmt.Fprintf(&b, "\n   FAILED: %s", strings.Join(c.Problems, "; "))
	}
	return b.String()
}

func damagedText(d *Verification) string {
	switch {
	case d == nil:
		return "not run"
	case d.Passed():
		return "caught"
	}
	return "NOT caught"
}

// verifyLine is one verification's line: the tags it left and the evidence.
func verifyLine(v Verification) string {
	mark := "PASS"
	switch {
	case !v.Passed():
		mark = "FAIL"
	case v.Damaged:
		mark = "CAUGHT"
	}
	what := v.SnapshotID
	if v.Damaged {
		what += " (deliberately damaged copy: must fail)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  %s=%s", mark, what, TagVerified, orNone(v.Verified))
	if v.VerifyNote != "" {
		fmt.Fprintf(&b, " %s=%q", TagVerifyNote, v.VerifyNote)
	}
	if r := v.Report; r != nil {
		fmt.Fprintf(&b, "\n      mariadbd up in %s ms (%s), %d tables checked, %d failed, %d/%d SQL checks true",
			rpt.Ms(msDur(r.StartMS)), recoveryText(r.Recovery), r.TablesChecked, len(r.TablesFailed), trueChecks(r), len(r.Checks))
		switch {
		case r.Binlog == nil:
		case r.Binlog.Skipped != "":
			fmt.Fprintf(&b, ", binlog not compared (%s)", r.Binlog.Skipped)
		default:
			fmt.Fprintf(&b, ", %s is %d bytes (tag %d)", r.Binlog.File, r.Binlog.Size, r.Binlog.Pos)
		}
		if r.GTID != nil {
			fmt.Fprintf(&b, ", gtid %s", r.GTID.Got)
		}
	}
	if !v.Damaged && v.Transfers > 0 {
		fmt.Fprintf(&b, ", %d transfers", v.Transfers)
	}
	if v.CreateToTag >= 0 {
		fmt.Fprintf(&b, "; create volume → verified tag %s ms", rpt.Ms(v.CreateToTag))
	}
	if !v.Passed() {
		b.WriteString("\n   " + strings.Join(v.Problems, "\n   "))
	}
	return b.String()
}

func trueChecks(r *contract.VerifyReport) int {
	n := 0
	for _, c := range r.Checks {
		if c.OK {
			n++
		}
	}
	return n
}

var (
	recoverPagesRe = regexp.MustCompile(`To recover: (\d+) pages`)
	preparedRe     = regexp.MustCompile(`(\d+) transactions? in prepared state after recovery`)
)

// recoveryText sums up the server's crash recovery from its log lines: the
// redo pages it applied and the transactions BLOCK_COMMIT caught prepared
// (the server resolves them against the binlog: not in it, rolled back).
func recoveryText(r contract.Recovery) string {
	if !r.Ran {
		return "no crash recovery needed"
	}
	var parts []string
	for _, m := range r.Messages {
		if g := recoverPagesRe.FindStringSubmatch(m); g != nil {
			parts = append(parts, g[1]+" redo pages")
		}
		if g := preparedRe.FindStringSubmatch(m); g != nil {
			parts = append(parts, g[1]+" prepared transaction(s) resolved against the binlog")
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("crash recovery: %d log lines", len(r.Messages))
	}
	return "crash recovery: " + strings.Join(parts, ", ")
}

// SummaryText renders the final table.
func SummaryText(res *RunResult) string {
	s := res.Summary
	row := func(name string, d rpt.Dist) []string {
		if d.N == 0 {
			return []string{name, "-", "-", "-", "0"}
		}
		return []string{name, rpt.Ms(d.P50), rpt.Ms(d.P99), rpt.Ms(d.Max), fmt.Sprint(d.N)}
	}
	copyName := "snapshot copy (FICLONE reflink)"
	if !s.Reflink {
		copyName = "snapshot copy (PLAIN COPY: no reflink)"
	}
	var b strings.Builder
	b.WriteString(rpt.Text([]string{"ms", "p50", "p99", "max", "n"}, [][]string{
		row("write-blocked window (hostagent freeze start → thaw)", s.Window),
		row("  … excluding the snapshot copy", s.WindowExclCopy),
		row("Lambda: freeze SendCommand sent → thaw returned", s.LambdaWindow),
		row("filesystem frozen (frozen_at → thawed_at)", s.Frozen),
		row("hostagent freeze command → everything held", s.Held),
		row("Lambda's snapshot call (incl. the copy)", s.SnapshotCall),
		row(copyName, s.Copy),
		row("verify: create volume → quiesce:verified tag", s.CreateToVerified),
	}))
	b.WriteString("\n")
	ws := res.Writer
	stallWhere := "outside any freeze window"
	if ws.MaxStallCycle > 0 {
		stallWhere = fmt.Sprintf("during cycle %d", ws.MaxStallCycle)
	} else if ws.MaxStallNote != "" {
		stallWhere += " (" + ws.MaxStallNote + ")"
	}
	b.WriteString(rpt.Text([]string{"run", "value"}, [][]string{
		{"cycles", fmt.Sprintf("%d ok, %d failed (lambda: %s)", s.CyclesOK, s.CyclesFailed, res.Lambda)},
		{"snapshots taken", fmt.Sprint(s.Snapshots)},
		{"writer commits", fmt.Sprintf("%d (%.0f/s), %d errors", ws.Commits, ws.TPS, ws.Errors)},
		{"writer max commit stall", fmt.Sprintf("%s ms, %s", rpt.Ms(ws.MaxStall), stallWhere)},
		{"verified (Lambda verify action)", fmt.Sprintf("%d ok, %d failed; damaged copy %s", s.VerifiedOK, s.VerifyFailed, damagedText(res.Damaged))},
	}))
	b.WriteString("\n")
	var trows [][]string
	for _, t := range s.Targets {
		mark := "met"
		if !t.Met {
			mark = "MISSED"
		}
		trows = append(trows, []string{t.Name, t.Want, t.Got, mark})
	}
	b.WriteString(rpt.Text([]string{"target", "want", "measured", ""}, trows))
	b.WriteString("\n" + res.Machine.String() + "\n")
	return b.String()
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// underLoad runs body while the writer runs with that many connections: it
// lets the writer reach steady state before, and the last blocked commits
// land after, then stops it and returns its commits and how long it wrote.
func (e *Env) underLoad(ctx context.Context, workers int, body func() error) ([]bank.Commit, time.Duration, error) {
	e.StartWriter(workers)
	start := time.Now()
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return nil, 0, err
	}
	if err := body(); err != nil {
		return nil, 0, err
	}
	_ = sleepCtx(ctx, 300*time.Millisecond)
	if err := e.StopWriter(ctx); err != nil {
		return nil, 0, err
	}
	return e.Writer.Commits(), time.Since(start), nil
}

// sampler takes one sample of a method.
type sampler struct {
	into *Method
	take func() Sample
}

// sampleEach takes one sample of each method in turn, a pause after each.
func sampleEach(ctx context.Context, pause time.Duration, samplers ...sampler) error {
	for _, s := range samplers {
		s.into.Samples = append(s.into.Samples, s.take())
		if err := sleepCtx(ctx, pause); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t); d > 0 {
		return sleepCtx(ctx, d)
	}
	return ctx.Err()
}
