// Package otel exports demur's work as OpenTelemetry traces that follow
// the GenAI semantic conventions, over OTLP, when the user configures an
// endpoint (see Config).
//
// Spans are derived from the audit log, the way the feed and the metrics
// are: a Tracer folds the records a process appends (or reads) into spans
// with the log's own timestamps, and starts and ends each span at once when
// the records that complete it arrive. So `demur run`, a resumed run,
// `demur serve` following a store and the proxy all produce the same
// spans for the same records, with IDs derived from the log (JobTraceID,
// and span IDs from task, agent and attempt): a trace can be rebuilt from
// the log, and a job's trace ID computed from its ID.
//
// A job is one trace:
//
//	invoke_workflow JOB                     the job, job.start to job.end
//	├── invoke_agent AGENT                  a task handed to an agent, to the decision on it
//	│   └── chat MODEL                      the backend turn, with the detector's verdict (demur.verdict.*)
//	│       └── apply_guardrail demur router  the router's decision (gen_ai.security.decision.*)
//	└── override ACTION                     an override the coordinator carried out
//
// A proxy exchange is one trace of chat and apply_guardrail spans, joined
// to the client's own trace when the request carried a W3C traceparent.
//
// With no endpoint configured nothing here runs: no Tracer, no goroutine,
// no cost on the paths that write the log.
package otel

import (
	"context"
	"fmt"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/demurhq/demur"
)

// scope is the instrumentation scope of every span.
const scope = "github.com/demurhq/demur/otel"

// Options configure how records become spans.
type Options struct {
	// ObserveOnly says decisions are recorded but not carried out (the
	// proxy's observe mode): every decision but allow is then an audit.
	ObserveOnly bool
}

// Tracer turns audit records into spans. Records are folded on one
// goroutine, in the order they were handed over, so that whoever appends
// them waits for neither the fold nor the export. It is safe for
// concurrent use.
type Tracer struct {
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer
	sampler sdktrace.Sampler // the provider's, for UpstreamTraceparent
	fold    *fold            // owned by the run goroutine

	mu     sync.RWMutex // guards closed against sends on q
	closed bool
	q      chan item
	done   chan struct{}
}

type item struct {
	recs    []*demur.Record
	emit    bool          // false: fold state only (priming)
	flushed chan struct{} // closed once everything before it is folded
}

// New returns a Tracer whose spans go to a tracer provider built from
// opts (processors, resource); New adds the ID generator that gives spans
// their derived IDs, and a sampler that keeps every trace whole unless
// opts bring another. Shutdown flushes and stops it.
func New(o Options, opts ...sdktrace.TracerProviderOption) *Tracer {
	opts = append([]sdktrace.TracerProviderOption{sdktrace.WithSampler(traceSampler{sdktrace.AlwaysSample()})}, opts...)
	opts = append(opts, sdktrace.WithIDGenerator(idGenerator{}))
	tp := sdktrace.NewTracerProvider(opts...)
	t := &Tracer{tp: tp, tracer: tp.Tracer(scope, trace.WithSchemaURL(semconv.SchemaURL)), fold: newFold(o.ObserveOnly),
		sampler: traceSampler{sdktrace.AlwaysSample()}, q: make(chan item, 1024), done: make(chan struct{})}
	go t.run()
	return t
}

func (t *Tracer) run() {
	defer close(t.done)
	for it := range t.q {
		if it.recs != nil {
			emit := t.start
			if !it.emit {
				emit = func(*span) {}
			}
			t.fold.add(it.recs, emit)
		}
		if it.flushed != nil {
			close(it.flushed)
		}
	}
}

// start starts and ends s at once, at the log's timestamps, with the IDs
// the fold derived.
func (t *Tracer) start(s *span) {
	ctx := context.Background()
	if s.parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, s.parent)
	}
	ctx = context.WithValue(ctx, idsKey{}, fixedIDs{trace: s.trace, span: s.id})
	_, sp := t.tracer.Start(ctx, s.name, trace.WithTimestamp(s.start), trace.WithSpanKind(s.kind), trace.WithAttributes(s.attrs...))
	for _, e := range s.events {
		sp.AddEvent(e.name, trace.WithTimestamp(e.at), trace.WithAttributes(e.attrs...))
	}
	if s.status != 0 {
		sp.SetStatus(s.status, s.desc)
	}
	sp.End(trace.WithTimestamp(s.end))
}

// Observe hands over records just made durable, in seq order per stream.
// It returns at once; the records must not change afterwards. After
// Shutdown it does nothing.
func (t *Tracer) Observe(recs []*demur.Record) {
	if len(recs) == 0 {
		return
	}
	// Copies: a writer may reuse its records once they are durable.
	cp := make([]demur.Record, len(recs))
	ptrs := make([]*demur.Record, len(recs))
	for i, r := range recs {
		cp[i] = *r
		ptrs[i] = &cp[i]
	}
	t.send(item{recs: ptrs, emit: true})
}

// prime folds records already in the log without emitting their spans:
// they were exported by whoever appended them, and what they leave open
// (a task handed out before a restart) ends with records to come.
func (t *Tracer) prime(recs []*demur.Record) {
	if len(recs) > 0 {
		t.send(item{recs: recs})
	}
}

// Prime reads the stream from st and folds it without exporting, so that
// spans opened before this process (a resumed job's tasks and workflow)
// end with the right start when their records arrive.
func (t *Tracer) Prime(ctx context.Context, st demur.Store, stream string) error {
	recs, err := st.Records(ctx, demur.Query{Stream: stream})
	if err != nil {
		return fmt.Errorf("trace: read job %s: %w", stream, err)
	}
	t.prime(recs)
	return nil
}

func (t *Tracer) send(it item) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		if it.flushed != nil {
			close(it.flushed)
		}
		return
	}
	t.q <- it
}

// Flush waits until every record handed over is folded and its spans
// exported.
func (t *Tracer) Flush(ctx context.Context) error {
	done := make(chan struct{})
	t.send(item{flushed: done})
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := t.tp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("trace: flush: %w", err)
	}
	return nil
}

// Shutdown folds what was handed over, exports the spans and stops.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.q)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("trace: shutdown: %w", err)
	}
	return nil
}

// Store returns st with every record appended through it handed to t once
// the append is durable: the coordinator and the proxy write through it.
func (t *Tracer) Store(st demur.Store) demur.Store { return &tracedStore{Store: st, t: t} }

type tracedStore struct {
	demur.Store
	t *Tracer
}

func (s *tracedStore) Append(ctx context.Context, recs ...*demur.Record) error {
	return s.AppendWithBlobs(ctx, nil, recs...)
}

// AppendWithBlobs keeps the wrapped store's one-commit path
// (demur.BlobAppender) for callers that write outputs with their records.
func (s *tracedStore) AppendWithBlobs(ctx context.Context, blobs [][]byte, recs ...*demur.Record) error {
	if err := demur.AppendWithBlobs(ctx, s.Store, blobs, recs...); err != nil {
		return err
	}
	s.t.Observe(recs)
	return nil
}
