package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment:
//
//	CHAOS_SEED        seed of every random choice (default: from the clock; always printed)
//	CHAOS_CASES       number of cases (default 20, 8 with -short; make chaos runs 200)
//	CHAOS_ONLY        comma-separated case indexes to run (reproduce one case of a seed)
//	CHAOS_CATEGORIES  comma-separated category names to run (default: all)
//
// Case i's category and every random choice in it depend only on the seed
// and i, so CHAOS_SEED=S CHAOS_ONLY=i replays case i of run S alone.
func TestChaos(t *testing.T) {
	seed := envUint(t, "CHAOS_SEED", uint64(time.Now().UnixNano())%1_000_000_000)
	cases := int(envUint(t, "CHAOS_CASES", 20))
	if testing.Short() && os.Getenv("CHAOS_CASES") == "" {
		cases = 8
	}
	only := envSet(t, "CHAOS_ONLY")
	cats := pickCategories(t)
	fmt.Printf("chaos: CHAOS_SEED=%d CHAOS_CASES=%d (%d categories)\n", seed, cases, len(cats))
	t.Logf("chaos: CHAOS_SEED=%d CHAOS_CASES=%d", seed, cases)

	w := newWorld(t)
	stopRescue := armRescue(t, w)
	defer stopRescue()

	order := caseOrder(seed, cases, cats)
	stats := map[string]*catStats{}
	for i, cat := range order {
		if only != nil && !only[i] {
			continue
		}
		if dl, ok := t.Deadline(); ok && time.Until(dl) < 45*time.Second {
			t.Logf("chaos: stopping before case %d: the test deadline is %v away", i, time.Until(dl).Round(time.Second))
			break
		}
		if w.sql() == nil {
			t.Fatalf("chaos: mariadbd could not be restarted; stopping before case %d", i)
		}
		st := stats[cat.name]
		if st == nil {
			st = &catStats{name: cat.name}
			stats[cat.name] = st
		}
		c := runCase(t, w, seed, i, cat)
		st.add(c)
	}
	report(t, seed, stats)
}

// runCase plays one case: plan, then the common checks, then releases the
// case's own resources. A panic inside still leaves the world rescued.
func runCase(t *testing.T, w *world, seed uint64, i int, cat category) *caseRun {
	c := newCase(t, w, seed, i, cat.name)
	t.Run(fmt.Sprintf("%03d-%s", i, cat.name), func(t *testing.T) {
		c.t = t
		finished := false
		defer func() {
			// A panic or t.Fatal inside the case: release it all the same,
			// the next case needs thawed mounts and a clean world.
			r := recover()
			defer c.end()
			if !finished {
				w.rescue()
				c.cleanup()
				os.RemoveAll(filepath.Dir(c.stateDir))
			}
			if r != nil {
				// The panic ends the test binary: tear the world down first
				// (this waits for a teardown a signal handler already began).
				w.teardown()
				panic(r)
			}
		}()
		cat.plan(c)
		c.finish()
		if t.Failed() {
			dumpStateDir(t, c.stateDir)
		}
		if err := w.releaseCase(); err != nil {
			c.failf("release the case's resources: %v", err)
		}
		finished = true
		os.RemoveAll(filepath.Dir(c.stateDir))
		t.Logf("case %d %s: %d failure(s), worst lateness %v; %s", i, cat.name, len(c.failures), c.worst.Round(time.Millisecond), strings.Join(c.notes, "; "))
	})
	return c
}

// caseOrder deals the categories round-robin in a seeded shuffle, so even a
// short run covers every category once before repeating one.
func caseOrder(seed uint64, n int, cats []category) []category {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]category, 0, n)
	for len(out) < n {
		perm := rng.Perm(len(cats))
		for _, j := range perm {
			if len(out) < n {
				out = append(out, cats[j])
			}
		}
	}
	return out
}

func pickCategories(t *testing.T) []category {
	var want map[string]bool
	if v := os.Getenv("CHAOS_CATEGORIES"); v != "" {
		want = map[string]bool{}
		for _, name := range strings.Split(v, ",") {
			want[strings.TrimSpace(name)] = true
		}
	}
	var out []category
	for _, c := range categories {
		if want == nil || want[c.name] {
			out = append(out, c)
			delete(want, c.name)
		}
	}
	for name := range want {
		t.Fatalf("CHAOS_CATEGORIES: unknown category %q", name)
	}
	if len(out) == 0 {
		t.Fatal("CHAOS_CATEGORIES selects no category")
	}
	return out
}

// armRescue makes sure the world is rescued (thawed, killed, unmounted by
// the cleanups) even when the test binary is interrupted or about to hit
// go test's -timeout, which exits without running cleanups.
func armRescue(t *testing.T, w *world) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	quit := make(chan struct{})
	var timeout <-chan time.Time
	if dl, ok := t.Deadline(); ok {
		timeout = time.After(time.Until(dl) - 15*time.Second)
	}
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "chaos: %v: tearing down (thaw, kill, stop mariadbd, unmount) before exit\n", s)
			w.teardown()
			if binDir != "" {
				os.RemoveAll(binDir)
			}
			os.Exit(1)
		case <-timeout:
			fmt.Fprintln(os.Stderr, "chaos: test deadline close: tearing down (thaw, kill, stop mariadbd, unmount) now")
			w.teardown()
		case <-quit:
		}
	}()
	return func() { signal.Stop(sigs); close(quit) }
}

// catStats are the per-category figures printed at the end.
type catStats struct {
	name            string
	cases, survived int
	failed          []string
	worst           time.Duration
	loadForgiven    int
}

func (s *catStats) add(c *caseRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.cases++
	if len(c.failures) == 0 {
		s.survived++
	} else {
		s.failed = append(s.failed, fmt.Sprintf("CHAOS_SEED=%d CHAOS_ONLY=%d: %s", c.seed, c.idx, c.failures[0]))
	}
	s.worst = max(s.worst, c.worst)
	if c.loadLate {
		s.loadForgiven++
	}
}

func report(t *testing.T, seed uint64, stats map[string]*catStats) {
	var names []string
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "chaos figures (CHAOS_SEED=%d):\n", seed)
	fmt.Fprintf(&b, "  %-17s %5s %8s %6s %14s %6s\n", "category", "cases", "survived", "failed", "worst late ms", "load")
	total, ok := 0, 0
	for _, n := range names {
		s := stats[n]
		total += s.cases
		ok += s.survived
		fmt.Fprintf(&b, "  %-17s %5d %8d %6d %14d %6d\n", n, s.cases, s.survived, len(s.failed), s.worst.Milliseconds(), s.loadForgiven)
	}
	fmt.Fprintf(&b, "  %-17s %5d %8d %6d\n", "total", total, ok, total-ok)
	for _, n := range names {
		for _, f := range stats[n].failed {
			fmt.Fprintf(&b, "  FAILED %s %s\n", n, f)
		}
	}
	fmt.Print(b.String())
	t.Log(b.String())
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// envSet parses a comma-separated list of case indexes (nil if unset).
func envSet(t *testing.T, name string) map[int]bool {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	out := map[int]bool{}
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			t.Fatalf("%s=%q: want comma-separated case indexes", name, v)
		}
		out[n] = true
	}
	return out
}

// dumpStateDir logs a failed case's records and run logs.
func dumpStateDir(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	done, _ := filepath.Glob(filepath.Join(dir, "done", "*.json"))
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range append(append(files, done...), logs...) {
		b, _ := os.ReadFile(f)
		t.Logf("%s:\n%s", f, b)
	}
}
