package otel_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur/otel"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestOtelConfig: the flag wins over the environment; the standard
// variables turn tracing on, off and choose the protocol.
func TestOtelConfig(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   otel.Config
		on    bool
		where string
		err   string
	}{
		{name: "nothing", cfg: otel.Config{Getenv: env()}},
		{name: "flag", cfg: otel.Config{Endpoint: "http://collector:4318", Getenv: env()}, on: true, where: "http/protobuf http://collector:4318/v1/traces"},
		{name: "flag with path", cfg: otel.Config{Endpoint: "https://c.example/otlp/v1/traces", Getenv: env()}, on: true, where: "http/protobuf https://c.example/otlp/v1/traces"},
		{name: "flag not a URL", cfg: otel.Config{Endpoint: "collector:4318", Getenv: env()}, err: "--otlp"},
		{name: "base endpoint", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")}, on: true, where: "http/protobuf http://c:4318/v1/traces"},
		{name: "traces endpoint", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/x")}, on: true, where: "http/protobuf http://c:4318/x"},
		{name: "exporter none", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_TRACES_EXPORTER", "none")}},
		{name: "sdk disabled", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_SDK_DISABLED", "true")}},
		{name: "flag wins over none", cfg: otel.Config{Endpoint: "http://c:4318", Getenv: env("OTEL_TRACES_EXPORTER", "none")}, on: true, where: "http/protobuf http://c:4318/v1/traces"},
		{name: "grpc", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")}, on: true, where: "grpc http://c:4317"},
		{name: "traces protocol wins", cfg: otel.Config{Endpoint: "http://c:4317", Getenv: env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")}, on: true, where: "grpc http://c:4317"},
		{name: "json", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")}, err: "http/json"},
		{name: "zipkin", cfg: otel.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_TRACES_EXPORTER", "zipkin")}, err: "OTLP only"},
	} {
		on, where, err := c.cfg.Resolve()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one about %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || on != c.on || where != c.where {
			t.Errorf("%s: on %v %q %v, want %v %q", c.name, on, where, err, c.on, c.where)
		}
	}
}

// TestOtelOffStartsNothing: with no endpoint configured, Start returns no
// tracer and leaves no goroutine behind.
func TestOtelOffStartsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	tr, err := otel.Start(context.Background(), otel.Config{Getenv: env("OTEL_SERVICE_NAME", "x")}, otel.Options{})
	if err != nil || tr != nil {
		t.Fatalf("Start with nothing configured: %v %v", tr, err)
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before, %d after", before, after)
	}
}
