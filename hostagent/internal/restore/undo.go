package restore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Undo is a stack of cleanup steps run in reverse order of Push.
type Undo struct {
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func(context.Context) error
}

// Push adds a step; name appears in the error if it fails.
func (u *Undo) Push(name string, fn func(context.Context) error) {
	u.steps = append(u.steps, undoStep{name, fn})
}

// Run runs every step, last pushed first, each even when an earlier one
// failed, within bound (ctx's cancellation is ignored: cleanup must happen
// after a timeout or a signal too). It empties the stack.
func (u *Undo) Run(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.steps[i].name, err))
		}
	}
	u.steps = nil
	return errors.Join(errs...)
}
