package otel

import (
	"context"

	"github.com/demurhq/demur"
)

// PollOnce returns one poll of Follow at a time, so that a test chooses
// what the log holds at each.
func PollOnce(t *Tracer, st demur.Store) func(first bool) error {
	f := &follower{t: t, st: st, after: map[string]int64{}, ended: map[string]bool{}}
	return func(first bool) error { return f.poll(context.Background(), first) }
}
