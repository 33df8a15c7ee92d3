package pool

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/mountinfo"
)

const table = `22 1 252:0 / / rw,relatime - ext4 /dev/vda rw
100 22 7:0 / /var/tmp/demo/pool rw,relatime - xfs /dev/loop0 rw
101 100 7:1 / /var/tmp/demo/data rw,relatime - xfs /dev/loop1 rw
102 100 7:2 / /var/tmp/demo/restore/snap-1 rw,relatime - xfs /dev/loop2 rw
103 22 7:3 / /var/tmp/demo2 rw,relatime - xfs /dev/loop3 rw
104 22 7:4 / /var/tmp/with\040space rw,relatime - xfs /dev/loop4 rw
`

func TestMountsUnderDeepestFirst(t *testing.T) {
	mounts, err := mountinfo.Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	got := mountsUnder(mounts, "/var/tmp/demo/")
	want := []string{"/var/tmp/demo/restore/snap-1", "/var/tmp/demo/pool", "/var/tmp/demo/data"}
	if len(got) != 3 || got[0] != want[0] {
		t.Fatalf("mountsUnder = %v, want deepest first %v", got, want)
	}
	for _, m := range got {
		if m == "/var/tmp/demo2" {
			t.Fatal("a sibling with the same prefix matched")
		}
	}
	// The pool must come after everything mounted inside it.
	idx := map[string]int{}
	for i, m := range got {
		idx[m] = i
	}
	if idx["/var/tmp/demo/pool"] < idx["/var/tmp/demo/restore/snap-1"] {
		t.Fatalf("pool before its child: %v", got)
	}
}

func TestCleanupRunsInReverseOnceAndBounded(t *testing.T) {
	var c Cleanup
	var order []string
	c.Push("first", func(context.Context) error { order = append(order, "first"); return nil })
	c.Push("hangs", func(ctx context.Context) error { <-ctx.Done(); order = append(order, "hangs"); return ctx.Err() })
	c.Push("fails", func(context.Context) error { order = append(order, "fails"); return errors.New("boom") })
	start := time.Now()
	err := c.Run(context.Background(), 50*time.Millisecond)
	if time.Since(start) > time.Second {
		t.Fatal("a hanging step was not bounded")
	}
	if !reflect.DeepEqual(order, []string{"fails", "hangs", "first"}) {
		t.Fatalf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "cleanup fails: boom") || !strings.Contains(err.Error(), "cleanup hangs") {
		t.Fatalf("errors not joined: %v", err)
	}
	if err := c.Run(context.Background(), time.Second); err != nil || len(order) != 3 {
		t.Fatalf("second Run re-ran steps: %v %v", order, err)
	}
}
