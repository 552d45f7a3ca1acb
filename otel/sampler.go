package otel

import (
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// traceSampler samples whole traces. A job's spans are started by the fold
// whenever their records complete them, possibly by different processes,
// so the decision must depend on the trace alone: base decides from the
// trace ID (always, never, or a ratio of IDs), the same for every span. A
// client's traceparent is obeyed, and a span under an unsampled parent is
// dropped with it.
type traceSampler struct{ base sdktrace.Sampler }

func (s traceSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if psc.IsValid() && (psc.IsRemote() || !psc.IsSampled()) {
		d := sdktrace.Drop
		if psc.IsSampled() {
			d = sdktrace.RecordAndSample
		}
		return sdktrace.SamplingResult{Decision: d, Tracestate: psc.TraceState()}
	}
	return s.base.ShouldSample(p)
}

func (s traceSampler) Description() string { return "demur.TraceSampler{" + s.base.Description() + "}" }

// samplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG:
// always_on, always_off and traceidratio, each also as parentbased_* (a
// client's traceparent is always obeyed). Other samplers are an error.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	switch strings.TrimPrefix(name, "parentbased_") {
	case "", "always_on":
		return traceSampler{sdktrace.AlwaysSample()}, nil
	case "always_off":
		return traceSampler{sdktrace.NeverSample()}, nil
	case "traceidratio":
		ratio := 1.0
		if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil || r < 0 || r > 1 {
				return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: want a ratio from 0 to 1", arg)
			}
			ratio = r
		}
		return traceSampler{sdktrace.TraceIDRatioBased(ratio)}, nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%s: want always_on, always_off or traceidratio (parentbased_ or not)", name)
}
