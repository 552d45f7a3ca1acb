package otel

import (
	"context"
	"fmt"
	"time"

	"github.com/demurhq/demur"
)

// Follow exports the spans of what jobs append to st until ctx ends, for a
// process that reads a log others write (`demur serve`). Jobs are found by
// their job.start records. What a job had written before Follow first saw
// it is folded without exporting (whoever wrote it could export it, and a
// restarted serve must not send it twice); a job that had already ended is
// left alone. When ctx ends, a last poll exports what came since the one
// before. Errors go to onErr and the next poll tries again.
func (t *Tracer) Follow(ctx context.Context, st demur.Store, every time.Duration, onErr func(error)) {
	if every <= 0 {
		every = 2 * time.Second
	}
	f := follower{t: t, st: st, after: map[string]int64{}, ended: map[string]bool{}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for first := true; ; first = false {
		if err := f.poll(ctx, first); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			// One last read, so that what was appended since the last
			// poll is exported before the process stops.
			if err := f.poll(context.WithoutCancel(ctx), false); err != nil && onErr != nil {
				onErr(err)
			}
			return
		case <-tick.C:
		}
	}
}

type follower struct {
	t     *Tracer
	st    demur.Store
	after map[string]int64 // job → last seq folded
	ended map[string]bool
	order []string
}

func (f *follower) poll(ctx context.Context, first bool) error {
	starts, err := f.st.Records(ctx, demur.Query{Kinds: []demur.RecordKind{demur.RecJobStart}})
	if err != nil {
		return fmt.Errorf("trace: list jobs: %w", err)
	}
	for _, s := range starts {
		if _, ok := f.after[s.Job]; ok || s.Job == "" {
			continue
		}
		f.after[s.Job] = 0
		f.order = append(f.order, s.Job)
		if !first {
			continue // a job started since: export it from its first record
		}
		recs, err := f.st.Records(ctx, demur.Query{Stream: s.Job})
		if err != nil {
			return fmt.Errorf("trace: read job %s: %w", s.Job, err)
		}
		f.note(s.Job, recs)
		if !f.ended[s.Job] {
			f.t.prime(recs)
		}
	}
	for _, job := range f.order {
		if f.ended[job] {
			continue
		}
		recs, err := f.st.Records(ctx, demur.Query{Stream: job, AfterSeq: f.after[job]})
		if err != nil {
			return fmt.Errorf("trace: read job %s: %w", job, err)
		}
		f.note(job, recs)
		f.t.Observe(recs)
	}
	return nil
}

// note advances a job's position and marks it ended at its job.end.
func (f *follower) note(job string, recs []*demur.Record) {
	for _, r := range recs {
		f.after[job] = max(f.after[job], r.Seq)
		if r.Kind == demur.RecJobEnd {
			f.ended[job] = true
		}
	}
}
