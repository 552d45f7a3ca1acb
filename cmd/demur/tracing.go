package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/demurhq/demur/otel"
)

// The --otlp flag of run, serve and proxy: OpenTelemetry traces of the
// log, exported over OTLP (docs/tracing.md).

func registerOTLP(f *pflag.FlagSet, v *string) {
	f.StringVar(v, "otlp", "", "export OpenTelemetry traces to this OTLP collector URL, e.g. http://127.0.0.1:4318 (default: the OTEL_EXPORTER_OTLP_* environment; off when neither is set)")
}

// checkOTLP rejects an unusable --otlp or OTEL_* setting before anything
// touches the disk.
func checkOTLP(endpoint string) error {
	if _, _, err := (otel.Config{Endpoint: endpoint}).Resolve(); err != nil {
		return usageError(err)
	}
	return nil
}

// startTracing starts exporting when --otlp or the environment asks for
// it; tr is nil otherwise, and stop always safe to call. stop exports the
// last spans, waiting a bounded time for a collector that is slow or gone.
func startTracing(ctx context.Context, endpoint string, stderr io.Writer, o otel.Options) (tr *otel.Tracer, stop func(), err error) {
	cfg := otel.Config{Endpoint: endpoint, OnError: exportErrors(stderr)}
	on, where, err := cfg.Resolve()
	if err != nil {
		return nil, func() {}, usageError(err)
	}
	if !on {
		return nil, func() {}, nil
	}
	if tr, err = otel.Start(ctx, cfg, o); err != nil {
		return nil, func() {}, err
	}
	fmt.Fprintf(stderr, "demur: exporting traces over OTLP %s\n", where)
	return tr, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			fmt.Fprintf(stderr, "demur: %v\n", err)
		}
	}, nil
}

// exportErrors reports the exporter's errors on stderr, at most one line
// per 30 seconds: a collector that is down must not drown the output.
func exportErrors(stderr io.Writer) func(error) {
	var mu sync.Mutex
	var last time.Time
	skipped := 0
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 30*time.Second {
			skipped++
			return
		}
		more := ""
		if skipped > 0 {
			more = fmt.Sprintf(" (%d more since the last report)", skipped)
		}
		fmt.Fprintf(stderr, "demur: trace export: %v%s\n", err, more)
		last, skipped = time.Now(), 0
	}
}
