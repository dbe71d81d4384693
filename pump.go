package dnft

import (
	"context"
	"errors"
)

// receiver is a kernel monitor: Receive blocks for the next batch of
// notifications, Close unblocks it.
type receiver[T any] interface {
	Receive() ([]T, error)
	Close() error
}

// pump passes m's notifications on until ctx is done, and then closes m.
// An error errors.Is lost (notifications the kernel dropped) comes as a
// nil batch, so that the reader resynchronizes; any other error ends the
// pump on the second channel. A nil lost passes every error on.
func pump[T any](ctx context.Context, m receiver[T], lost error) (<-chan []T, <-chan error) {
	events := make(chan []T, 64)
	failed := make(chan error, 1)
	go func() {
		for {
			evs, err := m.Receive()
			switch {
			case lost != nil && errors.Is(err, lost):
				evs = nil
			case err != nil:
				failed <- err
				return
			case len(evs) == 0:
				continue
			}
			select {
			case events <- evs:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		<-ctx.Done()
		m.Close() // unblocks Receive
	}()
	return events, failed
}
