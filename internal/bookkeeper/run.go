package bookkeeper

import (
	"context"
	"errors"
	"sync"
)

// Runner is a long-lived component: Run blocks until ctx ends (then
// returning nil) or it fails.
type Runner interface {
	Run(ctx context.Context) error
}

// RunAll runs every runner concurrently until ctx ends or one of them
// returns; then it cancels the others and waits for all. It returns the
// errors of the runners that failed (joined), or nil when ctx ended and
// every runner returned nil or ctx's error.
func RunAll(ctx context.Context, runners ...Runner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			err := r.Run(ctx)
			stopped := ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
			if err != nil && !stopped {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
