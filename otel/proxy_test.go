package otel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/proxy"
)

// TestProxyTraces: a proxy exchange is a chat span with its guardrail; a
// request carrying a W3C traceparent puts them in the client's trace under
// the client's span, one without gets the trace ID the proxy answered with
// in X-Demur-Trace-Id; in observe mode a refusal's decision is an audit.
func TestProxyTraces(t *testing.T) {
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		if strings.Contains(r.Header.Get("X-Test"), "refuse") {
			return fakeupstream.Reply{Refusal: "I can't help with that request."}
		}
		return fakeupstream.Reply{Text: "A cool spring morning: the river wakes, and the town follows it down to the sea."}
	})
	defer up.Close()
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{ObserveOnly: true}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	srv, err := proxy.New(proxy.Config{Upstream: up.URL + "/v1", Store: tr.Store(openStore(t)), Job: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	post := func(hdr map[string]string) string { return postChat(t, hs.URL, hdr) }
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	post(map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-01", proxy.HeaderAgent: "planner"})
	own := post(nil)
	refused := post(map[string]string{"X-Test": "refuse"})
	post(map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-00"}) // not sampled by the client
	post(map[string]string{"Traceparent": "00-zz-not-a-traceparent-01"})                   // ignored: a trace of its own
	hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	flush(t, tr)

	spans := exp.GetSpans().Snapshots()
	chats := map[string]sdktrace.ReadOnlySpan{}
	guards := map[string]sdktrace.ReadOnlySpan{} // by parent span ID
	for _, s := range spans {
		switch a := attrs(s); a["gen_ai.operation.name"].AsString() {
		case "chat":
			chats[s.SpanContext().TraceID().String()+"/"+a["gen_ai.agent.id"].AsString()] = s
			if a["gen_ai.provider.name"].AsString() != "openai" || s.Name() != "chat gpt-test" {
				t.Errorf("chat span %q: %v", s.Name(), a)
			}
		case "apply_guardrail":
			guards[s.Parent().SpanID().String()] = s
		}
	}
	// The unsampled client trace is not exported: four exchanges, four
	// chats, four guardrails.
	if len(spans) != 8 || len(chats) != 4 || len(guards) != 4 {
		t.Fatalf("%d spans, %d chats, %d guardrails", len(spans), len(chats), len(guards))
	}
	joined := chats[clientTrace+"/planner"]
	if joined == nil || joined.Parent().SpanID().String() != clientSpan || !joined.Parent().IsRemote() {
		t.Fatalf("the traceparent request's chat is not under the client's span: %v", joined)
	}
	mine := chats[own+"/anonymous"]
	if mine == nil || mine.Parent().IsValid() {
		t.Fatalf("no root chat span in trace %s (X-Demur-Trace-Id)", own)
	}
	if g := guards[mine.SpanContext().SpanID().String()]; g == nil || attrs(g)["gen_ai.security.decision.type"].AsString() != "allow" {
		t.Errorf("a compliant exchange's guardrail: %v", g)
	}
	r := chats[refused+"/anonymous"]
	if r == nil || attrs(r)["demur.verdict.kind"].AsString() != "refuse" || attrs(r)["demur.turn.provider_refusal"].AsBool() != true {
		t.Fatalf("refused exchange's chat: %v", r)
	}
	g := guards[r.SpanContext().SpanID().String()]
	if a := attrs(g); a["gen_ai.security.decision.type"].AsString() != "audit" || a["demur.action"].AsString() == "accept" {
		t.Errorf("observe mode's refusal decided %v", a)
	}
}

// TestTraceparentHeader: a valid header is honoured, a malformed one is
// ignored rather than failing the request.
func TestTraceparentHeader(t *testing.T) {
	up := fakeupstream.New(nil)
	defer up.Close()
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	st := tr.Store(openStore(t))
	cases := map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more": true, // a later version: its version-00 part
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":      false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":      false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":      false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-":     false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":         false,
	}
	for tp, ok := range cases {
		srv, err := proxy.New(proxy.Config{Upstream: up.URL + "/v1", Store: st})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hello there"}]}`))
		req.Header.Set("Traceparent", tp)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		hs.Close()
		if err := srv.Close(); err != nil { // flush the audit queue
			t.Fatal(err)
		}
		flush(t, tr)
		var chat sdktrace.ReadOnlySpan
		for _, s := range exp.GetSpans().Snapshots() {
			if attrs(s)["gen_ai.operation.name"].AsString() == "chat" {
				chat = s
			}
		}
		exp.Reset()
		if chat == nil {
			t.Fatalf("%s: no chat span", tp)
		}
		if got := chat.Parent().IsValid() && chat.SpanContext().TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736"; got != ok {
			t.Errorf("%s: joined the client's trace %v, want %v", tp, got, ok)
		}
	}
}

// TestUpstreamTraceparent: with Config.Traceparent from the tracer, each
// upstream attempt carries the W3C context of the chat span its turn
// becomes, in the client's trace (and with its sampled flag) when the
// client sent one; a retry gets its own span. Without it, the client's
// header goes upstream as it came.
func TestUpstreamTraceparent(t *testing.T) {
	var mu sync.Mutex
	var seen []string // the upstream's traceparent, call by call
	refused := false
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Traceparent"))
		if strings.Contains(r.Header.Get("X-Test"), "refuse-once") && !refused {
			refused = true
			return fakeupstream.Reply{Refusal: "I can't help with that request."}
		}
		return fakeupstream.Reply{Text: "A cool spring morning: the river wakes, and the town follows it down to the sea."}
	})
	defer up.Close()
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	srv, err := proxy.New(proxy.Config{Upstream: up.URL + "/v1", Store: tr.Store(openStore(t)), Job: "gateway",
		Mode: proxy.ModeEnforce, Traceparent: tr.UpstreamTraceparent})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	post := func(base string, hdr map[string]string) string { return postChat(t, base, hdr) }
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	post(hs.URL, map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-01"})
	own := post(hs.URL, map[string]string{"X-Test": "refuse-once"})
	post(hs.URL, map[string]string{"Traceparent": "00-" + clientTrace + "-" + clientSpan + "-00"})
	hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	flush(t, tr)

	chats := map[string]bool{} // the exported chat spans' contexts, as traceparents
	for _, s := range exp.GetSpans().Snapshots() {
		if attrs(s)["gen_ai.operation.name"].AsString() == "chat" {
			sc := s.SpanContext()
			chats["00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01"] = true
		}
	}
	if len(seen) != 4 || len(chats) != 3 {
		t.Fatalf("upstream saw %q; %d chat spans exported, want 4 calls and 3 sampled chats", seen, len(chats))
	}
	for i, want := range []struct{ trace, flags string }{{clientTrace, "01"}, {own, "01"}, {own, "01"}, {clientTrace, "00"}} {
		parts := strings.Split(seen[i], "-")
		if len(parts) != 4 || parts[1] != want.trace || parts[2] == clientSpan || parts[3] != want.flags {
			t.Errorf("call %d: upstream traceparent %q, want trace %s, a span of demur's, flags %s", i+1, seen[i], want.trace, want.flags)
		}
		if want.flags == "01" && !chats[seen[i]] {
			t.Errorf("call %d: upstream traceparent %q names no exported chat span", i+1, seen[i])
		}
	}
	if seen[1] == seen[2] {
		t.Errorf("the retry went upstream under the first attempt's span %s", seen[1])
	}

	// Without Config.Traceparent the client's header passes unchanged.
	plain, err := proxy.New(proxy.Config{Upstream: up.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	hs = httptest.NewServer(plain)
	defer hs.Close()
	defer plain.Close()
	tp := "00-" + clientTrace + "-" + clientSpan + "-01"
	post(hs.URL, map[string]string{"Traceparent": tp})
	if last := seen[len(seen)-1]; last != tp {
		t.Errorf("without Config.Traceparent the upstream got %q, want the client's %q", last, tp)
	}
}

// postChat sends one chat completion through the proxy at base, with hdr,
// and returns the exchange's X-Demur-Trace-Id.
func postChat(t *testing.T, base string, hdr map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"Describe a river town in one paragraph."}]}`))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get(proxy.HeaderTraceID)
}
