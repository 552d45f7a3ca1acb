package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/sqlite"
)

const clientKey = "sk-client-KEY-4242424242"

// rig is a fake provider, demur proxy in front of it, and a store.
type rig struct {
	up    *fakeupstream.Server
	srv   *Server
	http  *httptest.Server
	store demur.Store
}

func newRig(t *testing.T, cfg Config, reply func(*fakeupstream.Request) fakeupstream.Reply) *rig {
	t.Helper()
	up := fakeupstream.New(reply)
	t.Cleanup(up.Close)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Upstream, cfg.AnthropicUpstream, cfg.Store = up.URL+"/v1", up.URL, st
	if cfg.Job == "" {
		cfg.Job = "proxy-test"
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	r := &rig{up: up, srv: srv, http: hs, store: st}
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *rig) close(t *testing.T) {
	if r.http == nil {
		return
	}
	r.http.Close()
	r.http = nil
	if err := r.srv.Close(); err != nil {
		t.Errorf("close proxy: %v", err)
	}
}

// records flushes the proxy's audit queue and reads the job's records.
func (r *rig) records(t *testing.T) []*demur.Record {
	t.Helper()
	r.close(t)
	recs, err := r.store.Records(context.Background(), demur.Query{Job: "proxy-test"})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (r *rig) openai() oai.Client {
	return oai.NewClient(option.WithBaseURL(r.http.URL+"/v1/"), option.WithAPIKey(clientKey), option.WithMaxRetries(0),
		option.WithHeader(HeaderAgent, "writer-1"), option.WithHeader(HeaderTaskType, "long_form_document"))
}

func (r *rig) anthropic() sdk.Client {
	return sdk.NewClient(aoption.WithoutEnvironmentDefaults(), aoption.WithBaseURL(r.http.URL+"/"), aoption.WithAPIKey(clientKey),
		aoption.WithMaxRetries(0), aoption.WithHeader(HeaderAgent, "writer-2"))
}

var chatParams = oai.ChatCompletionNewParams{Model: "fake-model", Messages: []oai.ChatCompletionMessageParamUnion{
	oai.SystemMessage("You write sections."), oai.UserMessage("Write about wells.")}}

var msgParams = sdk.MessageNewParams{Model: "claude-fake", MaxTokens: 256, Messages: []sdk.MessageParam{
	sdk.NewUserMessage(sdk.NewTextBlock("Write about pipes."))}}

const wellText = "Wells reach down to the water table; a town's first wells were dug by hand and lined with stone."

func TestOpenAISDKNonStreaming(t *testing.T) {
	r := newRig(t, Config{}, func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Text: wellText} })
	c := r.openai()
	var hr *http.Response
	cc, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content != wellText || cc.Choices[0].FinishReason != "stop" || cc.Usage.CompletionTokens == 0 {
		t.Fatalf("got %+v", cc.Choices[0])
	}
	if hr.Header.Get(HeaderVerdict) != "comply" || len(hr.Header.Get(HeaderTraceID)) != 32 {
		t.Errorf("headers %v", hr.Header)
	}
	up := r.up.Requests()[0]
	if up.Header.Get("Authorization") != "Bearer "+clientKey {
		t.Errorf("client key not passed through: %q", up.Header.Get("Authorization"))
	}
	if up.Header.Get(HeaderAgent) != "" {
		t.Error("X-Demur-* headers leaked upstream")
	}
	recs := r.records(t)
	kinds := []demur.RecordKind{}
	for _, rec := range recs {
		kinds = append(kinds, rec.Kind)
		if bytes.Contains(rec.Payload, []byte(clientKey)) {
			t.Fatalf("API key recorded in %s", rec.Kind)
		}
	}
	if len(recs) != 3 || kinds[0] != demur.RecTurn || kinds[1] != demur.RecVerdict || kinds[2] != demur.RecDecision {
		t.Fatalf("records %v", kinds)
	}
	var tp demur.TurnPayload
	json.Unmarshal(recs[0].Payload, &tp)
	if tp.Agent != "writer-1" || tp.Task != hr.Header.Get(HeaderTraceID) || tp.Prompt != "Write about wells." || tp.Words != 19 {
		t.Errorf("turn %+v", tp)
	}
	if blob, err := r.store.Blob(context.Background(), tp.Output); err != nil || string(blob) != wellText {
		t.Errorf("output blob %q %v", blob, err)
	}
}

func TestOpenAISDKStreaming(t *testing.T) {
	r := newRig(t, Config{}, func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Text: wellText} })
	c := r.openai()
	var hr *http.Response
	p := chatParams
	p.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	s := c.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&hr))
	acc := oai.ChatCompletionAccumulator{}
	n := 0
	for s.Next() {
		acc.AddChunk(s.Current())
		n++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if acc.Choices[0].Message.Content != wellText || n < 5 {
		t.Fatalf("got %q in %d chunks", acc.Choices[0].Message.Content, n)
	}
	if len(hr.Header.Get(HeaderTraceID)) != 32 {
		t.Errorf("headers %v", hr.Header)
	}
	// The SDK closes the body at [DONE], before the trailers; a client that
	// reads to the end gets the verdict there.
	resp, body := post(t, r.http.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`), nil)
	if !strings.Contains(body, "data: [DONE]") || resp.Trailer.Get(HeaderVerdict) != "comply" || resp.Trailer.Get(HeaderDecision) != "accept" {
		t.Errorf("raw stream: trailer %v, body %q", resp.Trailer, body)
	}
	recs := r.records(t)
	if len(recs) != 6 {
		t.Fatalf("%d records", len(recs))
	}
	var vp demur.VerdictPayload
	json.Unmarshal(recs[1].Payload, &vp)
	if vp.Verdict.Kind != demur.KindComply || vp.Agent != "writer-1" {
		t.Errorf("verdict %+v", vp)
	}
}

func TestOpenAISDKToolCalls(t *testing.T) {
	r := newRig(t, Config{Mode: ModeEnforce}, func(*fakeupstream.Request) fakeupstream.Reply {
		return fakeupstream.Reply{Tool: "get_weather", ToolArgs: `{"city":"Oslo"}`}
	})
	c := r.openai()
	p := chatParams
	p.Tools = []oai.ChatCompletionToolUnionParam{oai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})}
	cc, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	tc := cc.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Oslo"}` || cc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls %+v", tc)
	}
	s := c.Chat.Completions.NewStreaming(context.Background(), p)
	acc := oai.ChatCompletionAccumulator{}
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if tc := acc.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Arguments != `{"city":"Oslo"}` {
		t.Fatalf("streamed tool calls %+v", tc)
	}
	// A tool call is not a refusal: enforce mode did not retry it.
	if r.up.Count() != 2 {
		t.Fatalf("%d upstream calls, want 2", r.up.Count())
	}
	if upBody := r.up.Requests()[0].Body; upBody["tools"] == nil {
		t.Error("tools not passed upstream")
	}
}

func TestOpenAISDKErrors(t *testing.T) {
	r := newRig(t, Config{MaxBody: 4096}, func(req *fakeupstream.Request) fakeupstream.Reply {
		if req.Body["model"] == "missing" {
			return fakeupstream.Reply{Status: 404}
		}
		return fakeupstream.Reply{Status: 429, RetryAfter: 7}
	})
	c := r.openai()
	var hr *http.Response
	_, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&hr))
	var ae *oai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Type != "rate_limit_error" || ae.Response.Header.Get("Retry-After") != "7" {
		t.Fatalf("429: %v", err)
	}
	p := chatParams
	p.Model = "missing"
	if _, err := c.Chat.Completions.New(context.Background(), p); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("404: %v", err)
	}
	s := c.Chat.Completions.NewStreaming(context.Background(), chatParams)
	for s.Next() {
	}
	if err := s.Err(); !errors.As(err, &ae) || ae.StatusCode != 429 {
		t.Fatalf("streaming 429: %v", err)
	}
	big := chatParams
	big.Messages = []oai.ChatCompletionMessageParamUnion{oai.UserMessage(strings.Repeat("x", 10000))}
	if _, err := c.Chat.Completions.New(context.Background(), big); !errors.As(err, &ae) || ae.StatusCode != 413 || !strings.Contains(ae.Message, "4096 bytes") {
		t.Fatalf("413: %v", err)
	}
	recs := r.records(t)
	if len(recs) != 3 { // the three upstream errors; the 413 never left
		t.Fatalf("%d records", len(recs))
	}
	var tp demur.TurnPayload
	json.Unmarshal(recs[0].Payload, &tp)
	if !strings.Contains(tp.Error, "upstream status 429") {
		t.Errorf("turn error %q", tp.Error)
	}
}

func TestOpenAISDKRefusalAndModels(t *testing.T) {
	r := newRig(t, Config{}, func(*fakeupstream.Request) fakeupstream.Reply {
		return fakeupstream.Reply{Refusal: "I'm sorry, but I can't help with that."}
	})
	c := r.openai()
	var hr *http.Response
	cc, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Refusal != "I'm sorry, but I can't help with that." || hr.Header.Get(HeaderVerdict) != "refuse" {
		t.Fatalf("refusal %q verdict %q", cc.Choices[0].Message.Refusal, hr.Header.Get(HeaderVerdict))
	}
	// Observe mode: one upstream call, the refusal passed unchanged.
	if r.up.Count() != 1 {
		t.Fatalf("%d upstream calls", r.up.Count())
	}
	page, err := c.Models.List(context.Background())
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "fake-model" {
		t.Fatalf("models: %v %v", page, err)
	}
	recs := r.records(t)
	var vp demur.VerdictPayload
	json.Unmarshal(recs[1].Payload, &vp)
	if vp.Verdict.Source != demur.SourceProvider {
		t.Errorf("verdict %+v", vp.Verdict)
	}
}

func TestAnthropicSDK(t *testing.T) {
	r := newRig(t, Config{}, func(req *fakeupstream.Request) fakeupstream.Reply {
		switch {
		case strings.Contains(string(mustJSON(req.Body)), "refuse me"):
			return fakeupstream.Reply{Finish: "refusal", StopCategory: "cyber", StopExplanation: "Declined."}
		case req.Body["tools"] != nil:
			return fakeupstream.Reply{Tool: "lookup", ToolArgs: `{"q":"pipes"}`}
		case req.Body["model"] == "overloaded":
			return fakeupstream.Reply{Status: 529}
		}
		return fakeupstream.Reply{Text: wellText}
	})
	c := r.anthropic()
	ctx := context.Background()
	var hr *http.Response
	m, err := c.Messages.New(ctx, msgParams, aoption.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if m.Content[0].Text != wellText || m.StopReason != sdk.StopReasonEndTurn || hr.Header.Get(HeaderVerdict) != "comply" {
		t.Fatalf("message %+v verdict %s", m, hr.Header.Get(HeaderVerdict))
	}
	s := c.Messages.NewStreaming(ctx, msgParams, aoption.WithResponseInto(&hr))
	var acc sdk.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Content[0].Text != wellText || acc.StopReason != sdk.StopReasonEndTurn || hr.Trailer.Get(HeaderVerdict) != "comply" {
		t.Fatalf("streamed %+v trailer %v", acc, hr.Trailer)
	}
	refuse := msgParams
	refuse.Messages = []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("refuse me"))}
	m, err = c.Messages.New(ctx, refuse, aoption.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if m.StopReason != sdk.StopReasonRefusal || m.StopDetails.Category != "cyber" || hr.Header.Get(HeaderVerdict) != "refuse" {
		t.Fatalf("refusal %+v verdict %s", m, hr.Header.Get(HeaderVerdict))
	}
	tools := msgParams
	tools.Tools = []sdk.ToolUnionParam{{OfTool: &sdk.ToolParam{Name: "lookup", InputSchema: sdk.ToolInputSchemaParam{}}}}
	m, err = c.Messages.New(ctx, tools)
	if err != nil {
		t.Fatal(err)
	}
	if m.Content[0].Type != "tool_use" || m.Content[0].Name != "lookup" || string(m.Content[0].Input) != `{"q":"pipes"}` {
		t.Fatalf("tool use %+v", m.Content)
	}
	over := msgParams
	over.Model = "overloaded"
	_, err = c.Messages.New(ctx, over)
	var ae *sdk.Error
	if !errors.As(err, &ae) || ae.StatusCode != 529 {
		t.Fatalf("529: %v", err)
	}
	up := r.up.Requests()[0]
	if up.Path != "/v1/messages" || (up.Header.Get("Authorization") != "Bearer "+clientKey && up.Header.Get("X-Api-Key") != clientKey) {
		t.Errorf("upstream saw %s %v", up.Path, up.Header)
	}
	if n := len(r.records(t)); n != 3*4+1 {
		t.Errorf("%d records, want 13", n)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
