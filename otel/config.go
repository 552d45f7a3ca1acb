package otel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	gootel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL that demur speaks.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Config says where traces go: the --otlp flag, else the standard
// OpenTelemetry environment. Tracing is off unless one of them names an
// endpoint.
//
// The environment read: OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (either turns tracing on),
// OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
// (http/protobuf, the default, or grpc), OTEL_TRACES_EXPORTER (none turns
// tracing off unless the flag is given), OTEL_SDK_DISABLED, and through the
// OpenTelemetry SDK OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, the exporters'
// TLS settings and OTEL_BSP_*. OTEL_TRACES_SAMPLER and its argument
// (always_on, always_off, traceidratio) decide per trace ID, so that a
// trace is kept or dropped whole.
type Config struct {
	// Endpoint is the --otlp flag: an http:// or https:// URL. Over
	// http/protobuf a URL without a path is the collector's base URL
	// (/v1/traces is added), as OTEL_EXPORTER_OTLP_ENDPOINT is. It wins
	// over the environment.
	Endpoint string
	// Getenv reads the variables that decide whether tracing is on, where,
	// how and which traces; nil means os.Getenv. The SDK reads its own
	// (service name, headers, TLS, batching) from the process environment.
	Getenv func(string) string
	// OnError gets the exporter's errors (a collector that is down); nil
	// leaves them to OpenTelemetry's global handler.
	OnError func(error)
}

// target is where spans go, as Resolve found it.
type target struct {
	protocol string
	url      string // the flag's, normalized; "" when the environment says
	shown    string // for people: the URL spans are sent to
	sampler  sdktrace.Sampler
}

// Resolve reports whether tracing is on and where spans go, for a message;
// an unusable setting is an error.
func (c Config) Resolve() (on bool, where string, err error) {
	t, on, err := c.resolve()
	if !on || err != nil {
		return false, "", err
	}
	return true, t.protocol + " " + t.shown, nil
}

func (c Config) resolve() (target, bool, error) {
	env := c.Getenv
	if env == nil {
		env = os.Getenv
	}
	var t target
	if c.Endpoint == "" {
		if strings.EqualFold(strings.TrimSpace(env("OTEL_SDK_DISABLED")), "true") {
			return t, false, nil
		}
		exporters := strings.Split(strings.ToLower(env("OTEL_TRACES_EXPORTER")), ",")
		otlp := false
		for _, e := range exporters {
			switch strings.TrimSpace(e) {
			case "none":
				return t, false, nil
			case "otlp", "":
				otlp = true
			}
		}
		if !otlp {
			return t, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: demur exports traces over OTLP only (otlp or none)", env("OTEL_TRACES_EXPORTER"))
		}
		if env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			return t, false, nil
		}
	}
	t.protocol = strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if t.protocol == "" {
		t.protocol = strings.TrimSpace(env("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch t.protocol {
	case "":
		t.protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolGRPC:
	default:
		return t, false, fmt.Errorf("OTLP protocol %q: want %s or %s", t.protocol, ProtocolHTTP, ProtocolGRPC)
	}
	var err error
	if t.sampler, err = samplerFromEnv(env); err != nil {
		return t, false, err
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return t, false, fmt.Errorf("--otlp %q: want an http:// or https:// URL, e.g. http://127.0.0.1:4318", c.Endpoint)
		}
		if t.protocol == ProtocolHTTP && (u.Path == "" || u.Path == "/") {
			u.Path = "/v1/traces"
		}
		t.url = u.String()
		t.shown = t.url
		return t, true, nil
	}
	switch ep := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); {
	case ep != "":
		t.shown = ep
	case t.protocol == ProtocolHTTP:
		t.shown = strings.TrimRight(env("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	default:
		t.shown = env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return t, true, nil
}

// Start returns a Tracer exporting over OTLP as c says, or nil when c
// leaves tracing off. Shut it down to export the last spans.
func Start(ctx context.Context, c Config, o Options) (*Tracer, error) {
	t, on, err := c.resolve()
	if err != nil || !on {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if t.protocol == ProtocolGRPC {
		var opts []otlptracegrpc.Option
		if t.url != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(t.url))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		var opts []otlptracehttp.Option
		if t.url != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(t.url))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("trace: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName("demur")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace: resource: %w", err)
	}
	var bsp []sdktrace.BatchSpanProcessorOption
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" { // the SDK's own variable
		// A simulated job writes thousands of turns a second, far more
		// than the default queue of 2,048 holds between two exports.
		bsp = append(bsp, sdktrace.WithMaxQueueSize(16384))
	}
	if c.OnError != nil {
		gootel.SetErrorHandler(gootel.ErrorHandlerFunc(c.OnError))
	}
	tr := New(o, sdktrace.WithBatcher(exp, bsp...), sdktrace.WithResource(res), sdktrace.WithSampler(t.sampler))
	tr.sampler = t.sampler
	return tr, nil
}
