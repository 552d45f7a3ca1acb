package otel_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/otel"
)

type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   map[string]int // by gen_ai.operation.name
	service string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				for _, kv := range s.Attributes {
					if kv.Key == "gen_ai.operation.name" {
						c.spans[kv.GetValue().GetStringValue()]++
					}
				}
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestOtelExportOverGRPC: with OTEL_EXPORTER_OTLP_PROTOCOL=grpc the spans
// of a run reach a gRPC collector, one chat span per turn record, under
// the service name from OTEL_SERVICE_NAME.
func TestOtelExportOverGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{spans: map[string]int{}}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, col)
	go gs.Serve(ln)
	defer gs.Stop()

	ctx := context.Background()
	t.Setenv("OTEL_SERVICE_NAME", "demur-test") // read by the SDK itself
	tr, err := otel.Start(ctx, otel.Config{Endpoint: "http://" + ln.Addr().String(),
		Getenv: env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")}, otel.Options{})
	if err != nil || tr == nil {
		t.Fatalf("start: %v %v", tr, err)
	}
	st := openStore(t)
	jobID := runJob(t, tr.Store(st), spec)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := tr.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if n, want := col.spans["chat"], len(records(t, st, jobID, demur.RecTurn)); n != want || n == 0 {
		t.Errorf("collector got %d chat spans, the log has %d turns", n, want)
	}
	if col.spans["invoke_workflow"] != 1 || col.service != "demur-test" {
		t.Errorf("collector got %v from service %q", col.spans, col.service)
	}
}
