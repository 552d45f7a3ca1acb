package otel

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strconv"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Trace and span IDs are derived from the log, not drawn at random, so that
// every process that folds the same records (`demur run`, `demur serve`,
// a resumed run) produces the same trace, a trace can be rebuilt from the
// log, and anyone holding a job ID can compute the ID of its trace.

// JobTraceID returns the trace ID of a job's trace: the first 16 bytes of
// SHA-256 over "demur/job/" and the job ID.
func JobTraceID(job string) trace.TraceID {
	sum := sha256.Sum256([]byte("demur/job/" + job))
	var t trace.TraceID
	copy(t[:], sum[:16])
	if !t.IsValid() {
		t[15] = 1
	}
	return t
}

// taskTraceID is the trace of a stream that is not a job (the proxy's): one
// trace per exchange. The proxy's task IDs are 32 hex digits already, the
// X-Demur-Trace-Id its client saw, and are used as they are.
func taskTraceID(job, task string) trace.TraceID {
	if len(task) == 32 {
		if b, err := hex.DecodeString(task); err == nil {
			var t trace.TraceID
			copy(t[:], b)
			if t.IsValid() {
				return t
			}
		}
	}
	sum := sha256.Sum256([]byte("demur/task/" + job + "\x00" + task))
	var t trace.TraceID
	copy(t[:], sum[:16])
	if !t.IsValid() {
		t[15] = 1
	}
	return t
}

// spanID derives a span's ID from its trace and what the span is about.
func spanID(t trace.TraceID, parts ...string) trace.SpanID {
	h := sha256.New()
	h.Write(t[:])
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var s trace.SpanID
	copy(s[:], sum[:8])
	if !s.IsValid() {
		s[7] = 1
	}
	return s
}

// turnKey names one hand-out of a task to an agent: a turn, its verdict and
// its decision all carry it.
type turnKey struct {
	task, agent string
	attempt     int
}

func (k turnKey) parts(kind string) []string {
	return []string{kind, k.task, k.agent, strconv.Itoa(k.attempt)}
}

// idsKey carries the IDs a span must have to the ID generator: the SDK
// asks its IDGenerator with the context the span is started with.
type idsKey struct{}

type fixedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// idGenerator hands the SDK the IDs the fold chose; a span started without
// them (none is, but the SDK must never get a zero ID) gets random ones.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(idsKey{}).(fixedIDs); ok {
		return f.trace, f.span
	}
	var t trace.TraceID
	binary.LittleEndian.PutUint64(t[:8], mrand.Uint64()|1)
	binary.LittleEndian.PutUint64(t[8:], mrand.Uint64())
	return t, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(idsKey{}).(fixedIDs); ok {
		return f.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	binary.LittleEndian.PutUint64(s[:], mrand.Uint64()|1)
	return s
}

// UpstreamTraceparent returns the W3C traceparent of the chat span that a
// proxy exchange's upstream attempt becomes once its turn is recorded
// (stream, task, agent and attempt as the turn record names them), in the
// client's trace when the client sent a traceparent ("" if not). Sent
// upstream in place of the client's, it makes an upstream that traces
// (another gateway, a model server) nest its spans under demur's rather
// than beside them. Its sampled flag is the client's, or this Tracer's
// sampler's decision for the trace, which the fold's spans follow too.
// It fits proxy.Config.Traceparent.
func (t *Tracer) UpstreamTraceparent(stream, task, agent string, attempt int, client string) string {
	tr := taskTraceID(stream, task)
	pc := remoteParent(client)
	flags := trace.TraceFlags(0)
	if pc.IsValid() {
		tr, flags = pc.TraceID(), pc.TraceFlags()
	} else if t.sampler.ShouldSample(sdktrace.SamplingParameters{TraceID: tr, Kind: trace.SpanKindClient}).Decision == sdktrace.RecordAndSample {
		flags = trace.FlagsSampled
	}
	sc := spanContext(tr, spanID(tr, turnKey{task, agent, attempt}.parts("chat")...)).WithTraceFlags(flags)
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}
