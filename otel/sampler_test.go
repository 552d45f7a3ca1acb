package otel

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestOtelSamplerKeepsTracesWhole: a ratio keeps or drops every span of a
// trace alike, whether the span is the root or under one of the fold's
// parents; a client's traceparent is obeyed either way.
func TestOtelSamplerKeepsTracesWhole(t *testing.T) {
	s, err := samplerFromEnv(func(k string) string {
		return map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(parent trace.SpanContext, tid trace.TraceID) sdktrace.SamplingDecision {
		ctx := context.Background()
		if parent.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, parent)
		}
		return s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "x"}).Decision
	}
	kept := 0
	for i := range 200 {
		tid := JobTraceID(string(rune('a'+i%26)) + string(rune('a'+i/26)))
		root := decide(trace.SpanContext{}, tid)
		child := decide(spanContext(tid, spanID(tid, "invoke_workflow")), tid)
		if root != child {
			t.Fatalf("trace %s: root %v, child %v", tid, root, child)
		}
		if root == sdktrace.RecordAndSample {
			kept++
		}
	}
	if kept < 60 || kept > 140 {
		t.Errorf("a ratio of 0.5 kept %d of 200 traces", kept)
	}
	off, _ := samplerFromEnv(func(k string) string { return map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}[k] })
	tid := JobTraceID("j")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: spanID(tid, "client"), TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithSpanContext(context.Background(), remote)
	if d := off.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid}).Decision; d != sdktrace.RecordAndSample {
		t.Errorf("a sampled client trace was dropped: %v", d)
	}
	ctx = trace.ContextWithSpanContext(context.Background(), remote.WithTraceFlags(0))
	if d := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid}).Decision; d != sdktrace.Drop {
		t.Errorf("an unsampled client trace was kept: %v", d)
	}
	if _, err := samplerFromEnv(func(k string) string { return map[string]string{"OTEL_TRACES_SAMPLER": "xray"}[k] }); err == nil {
		t.Error("an unsupported sampler was accepted")
	}
}
