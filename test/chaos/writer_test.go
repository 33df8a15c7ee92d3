package chaos

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// writer writes and fsyncs a small file on one mount in a loop for the whole
// case, recording when each write returned. A write issued while the
// filesystem is frozen blocks until the thaw, so the first write returning
// at or after an instant tells when the filesystem took writes again.
// writeOp is one write(2): when it was issued and when it returned.
type writeOp struct{ start, ret time.Time }

type writer struct {
	path string
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	ops      []writeOp // every write(2), in order
	inFlight time.Time // start of the write currently in progress (zero if none)
	err      error
}

func startWriter(mount string) *writer {
	w := &writer{path: filepath.Join(mount, ".chaos-writer"), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *writer) loop() {
	defer close(w.done)
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		w.setErr(err)
		return
	}
	defer f.Close()
	buf := make([]byte, 512)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		w.inFlight = time.Now()
		w.mu.Unlock()
		_, err := f.WriteAt(buf, 0)
		at := time.Now()
		w.mu.Lock()
		w.ops = append(w.ops, writeOp{start: w.inFlight, ret: at})
		w.inFlight = time.Time{}
		w.mu.Unlock()
		if err != nil {
			w.setErr(err)
			return
		}
		if err := f.Sync(); err != nil {
			w.setErr(err)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *writer) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// stuckAfter looks at the first write that returned at or after t: it
// returns that return time and how long after t the write was stuck inside
// write(2) (zero when it was issued after t and returned at once). Time the
// loop spent in fsync or asleep is not counted: only a blocked write shows a
// frozen filesystem. ok=false while no write has returned after t.
func (w *writer) stuckAfter(t time.Time) (ret time.Time, stuck time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.ops), func(i int) bool { return !w.ops[i].ret.Before(t) })
	if i == len(w.ops) {
		return time.Time{}, 0, false
	}
	op := w.ops[i]
	from := op.start
	if from.Before(t) {
		from = t
	}
	return op.ret, op.ret.Sub(from), true
}

// firstFrom returns the first write issued at or after t.
func (w *writer) firstFrom(t time.Time) (writeOp, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.ops), func(i int) bool { return !w.ops[i].start.Before(t) })
	if i == len(w.ops) {
		return writeOp{}, false
	}
	return w.ops[i], true
}

// blockedSince is the start of a write still in progress (zero if none).
func (w *writer) blockedSince() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight
}

// waitStuckAfter polls stuckAfter until a write returned at or after t, at most until limit.
func (w *writer) waitStuckAfter(t, limit time.Time) (ret time.Time, stuck time.Duration, ok bool) {
	for {
		if ret, stuck, ok := w.stuckAfter(t); ok {
			return ret, stuck, true
		}
		if w.failed() != nil || time.Now().After(limit) {
			return time.Time{}, 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// halt stops the loop and waits for it at most wait (a write blocked on a
// frozen filesystem cannot be interrupted); it reports whether it ended.
func (w *writer) halt(wait time.Duration) bool {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	select {
	case <-w.done:
		return true
	case <-time.After(wait):
		return false
	}
}
