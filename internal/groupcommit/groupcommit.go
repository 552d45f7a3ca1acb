// Package groupcommit is the single-writer queue of the SQL stores.
// Callers' appends and blob puts queue up; one goroutine takes whatever
// has queued since its last commit, up to the limits, hands it to the
// store's commit function as one batch, and answers every caller. Many
// concurrent callers thus share each commit (and its fsync).
package groupcommit

import (
	"context"
	"errors"
	"sync"

	"github.com/demurhq/demur"
)

// ErrClosed is returned for writes submitted after Close.
var ErrClosed = errors.New("store closed")

// Op is one caller's write: blobs to put, then records to append; either
// may be empty, and Recs is nil when there are no records.
type Op struct {
	Ctx   context.Context
	Blobs []demur.Blob
	Recs  []demur.Record // copies; the commit fills in seq, time and hashes
	err   chan error     // buffered; receives exactly one result
}

func (o *Op) size() int {
	n := 0
	for _, b := range o.Blobs {
		n += len(b.Data)
	}
	for i := range o.Recs {
		n += len(o.Recs[i].Payload)
	}
	return n
}

// Limits bound the queue and each batch.
type Limits struct {
	Queue int // ops waiting before Write blocks
	Ops   int // ops per batch
	Bytes int // blob and payload bytes per batch (a batch holds at least one op)
}

// Commit writes a batch and returns each op's result, in order. It must
// not keep the batch.
type Commit func(batch []*Op) []error

// Writer is the queue and its writer goroutine.
type Writer struct {
	commit Commit
	lim    Limits

	mu     sync.RWMutex // guards closed and sends on ops
	closed bool
	ops    chan *Op
	done   chan struct{} // closed when the writer goroutine has exited
}

// Start starts a writer that commits batches with commit.
func Start(lim Limits, commit Commit) *Writer {
	w := &Writer{commit: commit, lim: lim, ops: make(chan *Op, lim.Queue), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues blobs and recs and returns once they are committed; recs
// then carry the seq, time and hashes the commit gave them, and on error
// they are left as they were. A ctx that ends before the op reaches the
// writer aborts it; once it is being written, Write waits for the commit.
func (w *Writer) Write(ctx context.Context, blobs []demur.Blob, recs []*demur.Record) error {
	if len(recs) == 0 && len(blobs) == 0 {
		return nil
	}
	copies, err := demur.DetachForAppend(recs)
	if err != nil {
		return err
	}
	if len(copies) == 0 {
		copies = nil // a blob put: the commit may skip its own fsync
	}
	o := &Op{Ctx: ctx, Blobs: blobs, Recs: copies, err: make(chan error, 1)}
	if err := w.submit(ctx, o); err != nil {
		return err
	}
	if err := <-o.err; err != nil {
		return err
	}
	demur.SettleAppend(recs, o.Recs)
	return nil
}

func (w *Writer) submit(ctx context.Context, o *Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking writes and returns once every queued one is
// answered. It reports whether this call closed the writer.
func (w *Writer) Close() bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	<-w.done
	return true
}

// run takes whatever has queued up since the last commit, up to the
// limits, and commits it as one batch.
func (w *Writer) run() {
	defer close(w.done)
	var batch []*Op
	for first := range w.ops {
		batch = append(batch[:0], first)
		size := first.size()
	fill:
		for len(batch) < w.lim.Ops && size < w.lim.Bytes {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
				size += o.size()
			default:
				break fill
			}
		}
		results := w.commit(batch)
		for i, o := range batch {
			o.err <- results[i]
		}
		clear(batch) // drop references to payloads
	}
}
