// Package proxy is demur's drop-in gateway: an OpenAI-compatible
// (POST /v1/chat/completions, GET /v1/models) and Anthropic-compatible
// (POST /v1/messages) HTTP server in front of a real provider. Any framework
// in any language gets demur's refusal management by changing one base URL.
//
// Every exchange is classified by the refusal detector, decided on by the
// router policy and recorded in the audit log (turn, verdict, decision).
// In observe mode the provider's response passes unchanged and the records
// are written off the response path. In enforce mode the policy may retry
// with a reframe, a fresh context or a fallback model before the client
// sees anything, and each decision is durable before it takes effect.
// Responses carry X-Demur-Verdict and X-Demur-Trace-Id; a stream passed
// through in observe mode carries its verdict as an HTTP trailer and in the
// log.
package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/llmhttp"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/refusal"
)

// Mode is what the proxy does with a decision.
type Mode string

// The proxy's modes.
const (
	// ModeObserve classifies, decides and records; the response passes
	// unchanged.
	ModeObserve Mode = "observe"
	// ModeEnforce carries out retry-like decisions before answering.
	ModeEnforce Mode = "enforce"
)

// Headers the proxy reads and writes.
const (
	HeaderVerdict  = "X-Demur-Verdict"
	HeaderDecision = "X-Demur-Decision"
	HeaderTraceID  = "X-Demur-Trace-Id"
	HeaderTaskType = "X-Demur-Task-Type"
	HeaderAgent    = "X-Demur-Agent"
	HeaderJob      = "X-Demur-Job"
	HeaderInjected = "X-Demur-Injected"
)

// Route is per-route configuration: requests under /r/NAME/ take the task
// type and agent of route NAME unless their headers say otherwise.
type Route struct {
	TaskType string
	Agent    string
}

// Config configures a Server.
type Config struct {
	// Upstream is the OpenAI-compatible API root including /v1, e.g.
	// https://api.openai.com/v1 or http://127.0.0.1:8000/v1.
	Upstream string
	// AnthropicUpstream is the Anthropic API root without /v1, e.g.
	// https://api.anthropic.com; empty disables /v1/messages.
	AnthropicUpstream string
	// OpenAIKey and AnthropicKey replace the client's credentials when set;
	// otherwise the client's own key passes through to the upstream.
	OpenAIKey, AnthropicKey llmhttp.Key
	// Mode is observe (default) or enforce.
	Mode Mode
	// Store is the audit log; nil records nothing.
	Store demur.Store
	// Policies is a router policy file (policy.Load): each request takes
	// the rules of its task type. Nil means Policy for every request.
	Policies *policy.File
	// Policy is the policy when there is no file; nil means DefaultPolicy().
	Policy *policy.Policy
	// Job names the audit stream; empty means "proxy-YYYYMMDD" (UTC, at
	// start). A request's X-Demur-Job header overrides it.
	Job string
	// MaxBody bounds a request body (default 32 MiB); larger ones get 413.
	MaxBody int64
	// MaxResponse bounds a buffered upstream body (default 256 MiB).
	MaxResponse int64
	// Routes are the per-route configurations, by name.
	Routes map[string]Route
	// FallbackModel is the model a rotate or reassign decision switches to
	// in enforce mode; empty means such decisions retry the same model.
	FallbackModel string
	// MaxRetries bounds the extra upstream calls enforce mode makes for one
	// request (default 2).
	MaxRetries int
	// Client sends upstream requests; nil means a pooled default.
	Client *http.Client
	// QueueSize bounds the audit queue (default 4096).
	QueueSize int
	// Chaos, when enabled, injects refusals and faults per agent.
	Chaos *chaos.Config
	// Logger gets one line per failed exchange; nil discards.
	Logger *slog.Logger
	// Traceparent, when set, gives the W3C traceparent that each upstream
	// attempt carries in place of the client's, from the audit stream
	// (job), the exchange's trace ID, the agent, the attempt and the
	// client's traceparent ("" for none); "" leaves the client's. With
	// otel.Tracer.UpstreamTraceparent it names the chat span the attempt's
	// turn becomes, so an upstream that traces nests its spans under it.
	Traceparent func(stream, task, agent string, attempt int, client string) string
}

// DefaultPolicy is the proxy's policy when none is configured: reframe a
// refusal or partial once, then try the fallback model; retry degraded
// output once. Retirement does not apply to a gateway's clients.
func DefaultPolicy() *policy.Policy {
	return &policy.Policy{
		MinConfidence: 0.7,
		On: map[demur.Kind][]demur.Action{
			demur.KindRefuse:   {demur.ActionReframe, demur.ActionReassign},
			demur.KindPartial:  {demur.ActionReframe, demur.ActionReassign},
			demur.KindDegraded: {demur.ActionRetry, demur.ActionAccept},
		},
		RetireAfter: 1 << 30,
		MaxAttempts: 1 << 30,
	}
}

// Server is the gateway. Close it to flush the audit log.
type Server struct {
	cfg    Config
	client *http.Client
	audit  *auditor
	det    *refusal.Detector

	mu      sync.Mutex
	agents  map[string]*agentState
	chaosBy map[string]*chaos.Injector
}

type agentState struct {
	mu       sync.Mutex
	stream   *refusal.Stream // nil for anonymous traffic
	refusals int
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Upstream == "" && cfg.AnthropicUpstream == "" {
		return nil, errors.New("proxy: no upstream configured")
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeObserve
	case ModeObserve, ModeEnforce:
	default:
		return nil, fmt.Errorf("proxy: mode %q: want observe or enforce", cfg.Mode)
	}
	if cfg.Policy == nil {
		cfg.Policy = DefaultPolicy()
	}
	if cfg.Job == "" {
		cfg.Job = "proxy-" + time.Now().UTC().Format("20060102")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 32 << 20
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 256 << 20
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 2
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Chaos.Enabled() {
		if err := cfg.Chaos.Validate(); err != nil {
			return nil, fmt.Errorf("proxy: chaos: %w", err)
		}
	}
	s := &Server{cfg: cfg, client: cfg.Client, det: refusal.New(), agents: map[string]*agentState{}, chaosBy: map[string]*chaos.Injector{}}
	if s.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
		t.ResponseHeaderTimeout = 10 * time.Minute
		s.client = &http.Client{Transport: t}
	}
	if cfg.Store != nil {
		s.audit = newAuditor(cfg.Store, cfg.QueueSize)
	}
	return s, nil
}

// AuditQueueMax is the deepest the audit queue has been since start; at
// Config.QueueSize, requests were waiting for the store.
func (s *Server) AuditQueueMax() int {
	if s.audit == nil {
		return 0
	}
	return int(s.audit.maxDepth.Load())
}

// Job is the default audit job the server records under.
func (s *Server) Job() string { return s.cfg.Job }

// Close flushes queued audit records; call it after the HTTP server has
// stopped handing requests to s.
func (s *Server) Close() error {
	if s.audit == nil {
		return nil
	}
	return s.audit.close()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var route Route
	if rest, ok := strings.CutPrefix(path, "/r/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		rt, ok := s.cfg.Routes[name]
		if !ok {
			writeError(w, s.providerOf(r, path), http.StatusNotFound, fmt.Sprintf("no route %q", name))
			return
		}
		route, path = rt, "/"+sub
	}
	switch {
	case r.Method == http.MethodPost && path == "/v1/chat/completions":
		s.exchange(w, r, openAI, route)
	case r.Method == http.MethodPost && path == "/v1/messages":
		s.exchange(w, r, anthropicAPI, route)
	case r.Method == http.MethodGet && (path == "/v1/models" || strings.HasPrefix(path, "/v1/models/")):
		s.passThrough(w, r, s.providerOf(r, path), strings.TrimPrefix(path, "/v1"))
	default:
		writeError(w, s.providerOf(r, path), http.StatusNotFound, fmt.Sprintf("demur proxy serves POST /v1/chat/completions, POST /v1/messages and GET /v1/models, not %s %s", r.Method, path))
	}
}

// providerOf tells Anthropic clients (which send anthropic-version) from
// OpenAI ones on the paths they share.
func (s *Server) providerOf(r *http.Request, path string) provider {
	if strings.HasSuffix(path, "/messages") || (r.Header.Get("Anthropic-Version") != "" && s.cfg.AnthropicUpstream != "") {
		return anthropicAPI
	}
	return openAI
}

func (s *Server) upstreamURL(p provider, suffix, query string) string {
	var u string
	if p == anthropicAPI {
		if s.cfg.AnthropicUpstream == "" {
			return ""
		}
		u = strings.TrimRight(s.cfg.AnthropicUpstream, "/") + "/v1" + suffix
	} else {
		if s.cfg.Upstream == "" {
			return ""
		}
		u = strings.TrimRight(s.cfg.Upstream, "/") + suffix
	}
	if query != "" {
		u += "?" + query
	}
	return u
}

// hopByHop headers belong to one connection and are never forwarded.
var hopByHop = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true}

// upstreamHeader copies the client's headers, its credentials included
// unless the proxy has its own. Accept-Encoding is left to the transport,
// which then decompresses what the proxy must read.
func (s *Server) upstreamHeader(r *http.Request, p provider) http.Header {
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		if hopByHop[k] || k == "Host" || k == "Content-Length" || k == "Accept-Encoding" || strings.HasPrefix(k, "X-Demur-") {
			continue
		}
		h[k] = vs
	}
	switch {
	case p == openAI && !s.cfg.OpenAIKey.Empty():
		h.Set("Authorization", "Bearer "+s.cfg.OpenAIKey.Secret())
	case p == anthropicAPI && !s.cfg.AnthropicKey.Empty():
		h.Del("Authorization")
		h.Set("X-Api-Key", s.cfg.AnthropicKey.Secret())
	}
	return h
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		if hopByHop[k] || k == "Content-Length" {
			continue
		}
		dst[k] = vs
	}
}

func writeError(w http.ResponseWriter, p provider, status int, msg string) {
	body := errorBody(p, status, msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// passThrough forwards a request the proxy does not classify.
func (s *Server) passThrough(w http.ResponseWriter, r *http.Request, p provider, suffix string) {
	u := s.upstreamURL(p, suffix, r.URL.RawQuery)
	if u == "" {
		writeError(w, p, http.StatusNotFound, p.String()+" upstream is not configured")
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u, nil)
	if err != nil {
		writeError(w, p, http.StatusBadGateway, "build upstream request: "+err.Error())
		return
	}
	req.Header = s.upstreamHeader(r, p)
	resp, err := s.client.Do(req)
	if err != nil {
		writeError(w, p, http.StatusBadGateway, "upstream: "+err.Error())
		return
	}
	defer resp.Body.Close()
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// meta is who is asking and under what.
type meta struct {
	job, agent, taskType, trace string
	named                       bool // the agent identified itself
	declared                    bool // a route or header named the task type

	// traceparent is the client's W3C trace context, canonical; it goes
	// into the turn records so that the exchange's spans join its trace.
	traceparent string
}

var (
	jobRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	agentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)
)

func (s *Server) metaOf(r *http.Request, route Route) meta {
	m := meta{job: s.cfg.Job, agent: "anonymous", taskType: "default", trace: newTraceID()}
	if tp, ok := traceparent(r.Header.Get("Traceparent")); ok {
		m.traceparent = tp
	}
	if j := r.Header.Get(HeaderJob); jobRE.MatchString(j) {
		m.job = j
	}
	if route.Agent != "" {
		m.agent, m.named = route.Agent, true
	}
	if a := r.Header.Get(HeaderAgent); agentRE.MatchString(a) {
		m.agent, m.named = a, true
	}
	if route.TaskType != "" {
		m.taskType, m.declared = route.TaskType, true
	}
	if t := r.Header.Get(HeaderTaskType); jobRE.MatchString(t) {
		m.taskType, m.declared = t, true
	}
	return m
}

// newTraceID returns 128 random bits in hex. A trace ID names an exchange,
// it guards nothing, so the runtime's fast ChaCha8 source is enough and no
// system call sits on the request path.
func newTraceID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], mrand.Uint64())
	return hex.EncodeToString(b[:])
}

func (s *Server) agent(m meta) *agentState {
	key := m.job + "\x00" + m.agent
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[key]
	if a == nil {
		a = &agentState{}
		if m.named {
			// Only an identified agent has a history worth comparing with;
			// anonymous traffic mixes unrelated conversations, whose
			// lengths and wording say nothing about one another.
			a.stream = refusal.NewStream(s.det, 8)
		}
		s.agents[key] = a
	}
	return a
}

func (s *Server) policyFor(taskType string) *policy.Policy {
	if s.cfg.Policies != nil {
		if p := s.cfg.Policies.Rules(taskType); p != nil {
			return p
		}
	}
	return s.cfg.Policy
}

// readBody reads a request body up to limit; a larger one is an error the
// caller answers with 413.
func readBody(r *http.Request, w http.ResponseWriter, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}

// exchange handles one classified request: forward, classify, decide,
// record, and in enforce mode possibly try again.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request, p provider, route Route) {
	m := s.metaOf(r, route)
	w.Header().Set(HeaderTraceID, m.trace)
	suffix := "/chat/completions"
	if p == anthropicAPI {
		suffix = "/messages"
	}
	u := s.upstreamURL(p, suffix, r.URL.RawQuery)
	if u == "" {
		writeError(w, p, http.StatusNotFound, p.String()+" upstream is not configured")
		return
	}
	body, err := readBody(r, w, s.cfg.MaxBody)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, p, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the proxy's limit of %d bytes", mb.Limit))
			return
		}
		writeError(w, p, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	var req request
	// A body that does not decode goes upstream all the same: the provider's
	// own 400 is what the client's SDK knows how to report.
	_ = json.Unmarshal(body, &req)
	req.last = req.prompt()
	ex := &exchange{s: s, w: w, r: r, p: p, m: m, url: u, req: &req, header: s.upstreamHeader(r, p), ag: s.agent(m)}
	if s.cfg.Chaos.Enabled() {
		ex.draw = s.injector(m).Draw()
	}
	ex.run(body)
}

// exchange is one client request and its upstream attempts.
type exchange struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	p      provider
	m      meta
	url    string
	req    *request
	header http.Header
	ag     *agentState
	draw   chaos.Draw
	kinds  map[demur.Kind]int // verdict kinds seen so far in this exchange
	// cut makes respond drop the connection part-way (an injected cut).
	cut bool
	// injected is the kind shaped into this exchange's answer.
	injected string
}

func (ex *exchange) run(body []byte) {
	s := ex.s
	ctx := ex.r.Context()
	for attempt := 1; ; attempt++ {
		started := time.Now()
		if ex.req.Stream && s.cfg.Mode == ModeObserve {
			ex.streamThrough(ctx, body, attempt, started)
			return
		}
		status, hdr, out, res, err := ex.fetch(ctx, body, attempt)
		elapsed := time.Since(started)
		if err != nil {
			ex.recordError(ctx, attempt, started, elapsed, err.Error())
			writeError(ex.w, ex.p, http.StatusBadGateway, "upstream: "+err.Error())
			return
		}
		if status != http.StatusOK || res == nil {
			ex.recordError(ctx, attempt, started, elapsed, upstreamError(status, out))
			ex.respond(status, hdr, out, "none", "")
			return
		}
		v, d := ex.judge(res, attempt, started, elapsed)
		enforce := s.cfg.Mode == ModeEnforce
		if !enforce && !ex.cut {
			// Observe mode: nothing waits on the record, so the client need
			// not wait on its encoding either. The handler has not returned,
			// so a graceful shutdown still drains it.
			ex.respond(status, hdr, out, string(v.Kind), string(d.Action))
			if fl, ok := ex.w.(http.Flusher); ok {
				fl.Flush()
			}
			_ = ex.record(ctx, attempt, started, elapsed, res, v, d, false)
			return
		}
		if err := ex.record(ctx, attempt, started, elapsed, res, v, d, enforce); err != nil {
			// Enforce mode fails closed: a decision that is not durable
			// must not take effect, and passing the response on is one.
			s.cfg.Logger.Error("audit", "trace", ex.m.trace, "err", err)
			writeError(ex.w, ex.p, http.StatusServiceUnavailable, "demur could not record the decision: "+err.Error())
			return
		}
		if enforce && attempt <= s.cfg.MaxRetries {
			if next, ok := ex.rewrite(body, d); ok {
				body = next
				continue
			}
		}
		ex.respond(status, hdr, out, string(v.Kind), string(d.Action))
		return
	}
}

func upstreamError(status int, body []byte) string {
	const max = 300
	if len(body) > max {
		body = body[:max]
	}
	if status == http.StatusOK {
		return "upstream response did not decode: " + string(body)
	}
	return fmt.Sprintf("upstream status %d: %s", status, body)
}

// attemptHeader is the header of upstream attempt n: the exchange's own
// for the first, a copy for later ones (the first attempt's request may
// still hold it), with the attempt's traceparent when Config.Traceparent
// gives one.
func (ex *exchange) attemptHeader(attempt int) http.Header {
	h := ex.header
	if attempt > 1 {
		h = h.Clone()
	}
	if f := ex.s.cfg.Traceparent; f != nil {
		if tp := f(ex.m.job, ex.m.trace, ex.m.agent, attempt, ex.m.traceparent); tp != "" {
			h.Set("Traceparent", tp)
		}
	}
	return h
}

// fetch makes one upstream call and reads the whole answer, stream or not.
// res is nil when the status is not 200 or the body does not decode.
func (ex *exchange) fetch(ctx context.Context, body []byte, attempt int) (int, http.Header, []byte, *result, error) {
	if ex.draw.Kind.IsFault() && attempt == 1 {
		return ex.fault(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ex.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header = ex.attemptHeader(attempt)
	resp, err := ex.s.client.Do(req)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := readAll(resp, ex.s.cfg.MaxResponse)
	if err != nil {
		return 0, nil, nil, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, resp.Header, out, nil, nil
	}
	var res *result
	if ex.req.Stream {
		st := &streamState{p: ex.p}
		eachData(out, st.data)
		if !st.finished {
			return resp.StatusCode, resp.Header, out, nil, nil
		}
		res = st.result()
	} else if res, err = parseResponse(ex.p, out); err != nil {
		return resp.StatusCode, resp.Header, out, nil, nil
	}
	res.resp.Injected = resp.Header.Get(HeaderInjected)
	hdr := resp.Header
	if ex.draw.Kind != "" && !ex.draw.Kind.IsFault() && attempt == 1 {
		out = ex.shape(res, out)
		hdr = hdr.Clone()
		hdr.Set(HeaderInjected, ex.injected)
	}
	return resp.StatusCode, hdr, out, res, nil
}

// readAll reads a response body up to limit bytes, in one allocation when
// the length is declared.
func readAll(resp *http.Response, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + 1) // +1: ReadFrom wants room to see EOF without growing
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit))
	return buf.Bytes(), err
}

// eachData calls fn with every SSE data payload in a complete stream.
func eachData(stream []byte, fn func([]byte)) {
	for len(stream) > 0 {
		line := stream
		if i := bytes.IndexByte(stream, '\n'); i >= 0 {
			line, stream = stream[:i], stream[i+1:]
		} else {
			stream = nil
		}
		if d, ok := dataOf(line); ok {
			fn(d)
		}
	}
}

func dataOf(line []byte) ([]byte, bool) {
	line = bytes.TrimRight(line, "\r\n")
	d, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return nil, false
	}
	return bytes.TrimPrefix(d, []byte(" ")), true
}

// judge classifies a result and asks the router.
func (ex *exchange) judge(res *result, attempt int, started time.Time, elapsed time.Duration) (demur.Verdict, demur.Decision) {
	t := &demur.Turn{Job: ex.m.job, Task: ex.m.trace, Agent: ex.m.agent, Attempt: attempt, Prompt: ex.req.last,
		Response: res.resp, LPMean: meanOf(res.lps), Started: started.UTC(), Elapsed: elapsed}
	var v demur.Verdict
	r := &res.resp
	if res.tools && r.Output == "" && r.ProviderRefusal == "" && r.FinishReason != "content_filter" && r.FinishReason != "refusal" {
		// A tool call is work, not silence: there is no text to judge.
		v = demur.Verdict{Kind: demur.KindComply, Confidence: 1, Source: demur.SourceSignal, Detector: refusal.Version,
			Evidence: []demur.Evidence{{Rule: "proxy:tool_call"}}}
	} else {
		ex.ag.mu.Lock()
		if ex.ag.stream != nil {
			v = ex.ag.stream.Classify(t)
		} else {
			v = ex.s.det.Classify(t)
		}
		ex.ag.mu.Unlock()
	}
	if ex.s.cfg.Chaos.Enabled() {
		// Chaos's after_tokens counts what the agent really produced.
		ex.s.injector(ex.m).Observe(r.Usage.CompletionTokens)
	}
	if r.Injected != "" {
		v.Source = demur.SourceInjected
		v.Evidence = append(v.Evidence, demur.Evidence{Rule: "injected:" + r.Injected, Weight: 1})
	}
	typePath := ex.resolveType()
	pol := ex.s.policyFor(ex.m.taskType)
	ex.ag.mu.Lock()
	if v.Kind.IsRefusal() && v.Confidence >= pol.MinConfidence {
		ex.ag.refusals++
	}
	refusals := ex.ag.refusals
	ex.ag.mu.Unlock()
	if ex.kinds == nil {
		ex.kinds = map[demur.Kind]int{}
	}
	// The "other agent" a hand-over needs is, for a gateway, another model.
	other := 0
	if ex.fallback() != "" {
		other = 1
	}
	d := pol.Decide(policy.Input{Verdict: v, Attempt: attempt, Repeats: ex.kinds[v.Kind], AgentRefusals: refusals, OtherAgents: other})
	d.Path = append(typePath, d.Path...)
	ex.kinds[v.Kind]++
	// A gateway cannot retire its clients; the flag stays in the decision
	// path as the policy's opinion but is not set.
	d.Retire = false
	return v, d
}

// resolveType classifies an undeclared request's task type from its last
// user message, once per exchange, and returns the steps that chose it for
// the decision path. A declared type is never second-guessed by the text:
// a prompt that calls itself harmless cannot loosen an operator's policy.
func (ex *exchange) resolveType() []demur.Step {
	if ex.m.declared {
		return []demur.Step{{Rule: "task_type", Matched: true, Why: fmt.Sprintf("declared %s", ex.m.taskType)}}
	}
	files := ex.s.cfg.Policies
	if files == nil {
		files = policy.DefaultFile()
	}
	t, path := files.Resolve("", ex.req.last)
	ex.m.taskType, ex.m.declared = t, true // later attempts of this exchange keep it
	return path
}

func meanOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func (ex *exchange) respond(status int, hdr http.Header, body []byte, verdict, action string) {
	h := ex.w.Header()
	copyHeader(h, hdr)
	h.Set(HeaderVerdict, verdict)
	if action != "" {
		h.Set(HeaderDecision, action)
	}
	if ex.cut {
		// Promise more than is sent, then drop the connection: the client
		// sees exactly a response cut off mid-way.
		h.Set("Content-Length", fmt.Sprint(2*len(body)+1))
		ex.w.WriteHeader(status)
		ex.w.Write(body)
		if fl, ok := ex.w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	ex.w.WriteHeader(status)
	ex.w.Write(body)
}

// fallback is the model a hand-over switches to: the flag's, else the
// task type's fallback_model.
func (ex *exchange) fallback() string {
	if ex.s.cfg.FallbackModel != "" {
		return ex.s.cfg.FallbackModel
	}
	return ex.s.policyFor(ex.m.taskType).Fallback
}

// reframeText adds purpose and context, never a bare order.
const reframeText = "Context from the operator: this request comes from an automated agent doing routine, legitimate work, " +
	"and its output is reviewed by a person before use. If a part of the request cannot be done, do the rest and say " +
	"briefly which part was left out and why."

// rewrite returns the next attempt's body for decision d, or false when d
// does not call for another attempt.
func (ex *exchange) rewrite(body []byte, d demur.Decision) ([]byte, bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return nil, false
	}
	switch d.Action {
	case demur.ActionRetry:
		return body, true
	case demur.ActionReframe:
		ex.addSystem(doc, reframeText)
	case demur.ActionRefreshContext:
		ex.lastTurnOnly(doc)
	case demur.ActionRotate, demur.ActionReassign:
		model := ex.fallback()
		if model == "" {
			return body, true
		}
		doc["model"], _ = json.Marshal(model)
	default:
		return nil, false
	}
	next, err := json.Marshal(doc)
	if err != nil {
		return nil, false
	}
	return next, true
}

func (ex *exchange) addSystem(doc map[string]json.RawMessage, text string) {
	if ex.p == anthropicAPI {
		var sys any
		_ = json.Unmarshal(doc["system"], &sys)
		switch v := sys.(type) {
		case string:
			sys = v + "\n\n" + text
		case []any:
			sys = append(v, map[string]any{"type": "text", "text": text})
		default:
			sys = text
		}
		doc["system"], _ = json.Marshal(sys)
		return
	}
	var msgs []json.RawMessage
	_ = json.Unmarshal(doc["messages"], &msgs)
	sys, _ := json.Marshal(map[string]string{"role": "system", "content": text})
	// Just before the last message, where it frames the request at hand.
	i := max(0, len(msgs)-1)
	msgs = append(msgs[:i], append([]json.RawMessage{sys}, msgs[i:]...)...)
	doc["messages"], _ = json.Marshal(msgs)
}

func (ex *exchange) lastTurnOnly(doc map[string]json.RawMessage) {
	var msgs []json.RawMessage
	_ = json.Unmarshal(doc["messages"], &msgs)
	var keep []json.RawMessage
	for i, raw := range msgs {
		var m message
		_ = json.Unmarshal(raw, &m)
		if m.Role == "system" || m.Role == "developer" || i == len(msgs)-1 {
			keep = append(keep, raw)
		}
	}
	doc["messages"], _ = json.Marshal(keep)
}

// streamThrough forwards an SSE stream event by event (observe mode),
// reading it as it passes; the verdict goes to the log and the trailer.
func (ex *exchange) streamThrough(ctx context.Context, body []byte, attempt int, started time.Time) {
	if ex.draw.Kind.IsFault() {
		status, hdr, out, _, err := ex.fault(ctx)
		if err != nil {
			ex.recordError(ctx, attempt, started, time.Since(started), err.Error())
			writeError(ex.w, ex.p, http.StatusBadGateway, "upstream: "+err.Error())
			return
		}
		ex.recordError(ctx, attempt, started, time.Since(started), upstreamError(status, out))
		ex.respond(status, hdr, out, "none", "")
		return
	}
	if ex.draw.Kind != "" {
		// Shaping a refusal needs the whole answer: buffer this one.
		status, hdr, out, res, err := ex.fetch(ctx, body, attempt)
		elapsed := time.Since(started)
		if err != nil {
			ex.recordError(ctx, attempt, started, elapsed, err.Error())
			writeError(ex.w, ex.p, http.StatusBadGateway, "upstream: "+err.Error())
			return
		}
		if res == nil {
			ex.recordError(ctx, attempt, started, elapsed, upstreamError(status, out))
			ex.respond(status, hdr, out, "none", "")
			return
		}
		v, d := ex.judge(res, attempt, started, elapsed)
		_ = ex.record(ctx, attempt, started, elapsed, res, v, d, false)
		ex.respond(status, hdr, out, string(v.Kind), string(d.Action))
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ex.url, bytes.NewReader(body))
	if err != nil {
		writeError(ex.w, ex.p, http.StatusBadGateway, "build upstream request: "+err.Error())
		return
	}
	req.Header = ex.attemptHeader(attempt)
	resp, err := ex.s.client.Do(req)
	if err != nil {
		ex.recordError(ctx, attempt, started, time.Since(started), err.Error())
		writeError(ex.w, ex.p, http.StatusBadGateway, "upstream: "+err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(io.LimitReader(resp.Body, ex.s.cfg.MaxResponse))
		ex.recordError(ctx, attempt, started, time.Since(started), upstreamError(resp.StatusCode, out))
		ex.respond(resp.StatusCode, resp.Header, out, "none", "")
		return
	}
	h := ex.w.Header()
	copyHeader(h, resp.Header)
	h.Del("Content-Length")
	h.Set("Trailer", HeaderVerdict+", "+HeaderDecision)
	ex.w.WriteHeader(http.StatusOK)
	fl, _ := ex.w.(http.Flusher)
	st := &streamState{p: ex.p}
	br := bufio.NewReaderSize(resp.Body, 32<<10)
	var readErr error
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := ex.w.Write(line); werr != nil {
				readErr = fmt.Errorf("client went away: %w", werr)
				break
			}
			if d, ok := dataOf(line); ok {
				st.data(d)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 && fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			break
		}
	}
	if fl != nil {
		fl.Flush()
	}
	elapsed := time.Since(started)
	if readErr != nil || !st.finished {
		msg := "stream ended before a finish reason"
		if readErr != nil {
			msg = "stream: " + readErr.Error()
		}
		ex.recordError(ctx, attempt, started, elapsed, msg)
		h.Set(HeaderVerdict, "none")
		return
	}
	res := st.result()
	res.resp.Injected = resp.Header.Get(HeaderInjected)
	v, d := ex.judge(res, attempt, started, elapsed)
	// Observe mode: the stream has already passed, so nothing waits on the
	// record; it is queued like any other.
	_ = ex.record(context.WithoutCancel(ctx), attempt, started, elapsed, res, v, d, false)
	h.Set(HeaderVerdict, string(v.Kind))
	h.Set(HeaderDecision, string(d.Action))
}

// record queues the exchange's turn, verdict and decision; with wait it
// returns once they are durable.
func (ex *exchange) record(ctx context.Context, attempt int, started time.Time, elapsed time.Duration, res *result, v demur.Verdict, d demur.Decision, wait bool) error {
	a := ex.s.audit
	if a == nil {
		return nil
	}
	r := &res.resp
	output := []byte(r.Output)
	tp := demur.TurnPayload{Task: ex.m.trace, Agent: ex.m.agent, Attempt: attempt, Model: r.Model, Prompt: ex.req.last,
		Output: demur.BlobHash(output), OutputBytes: len(output), Words: countWords(r.Output), FinishReason: r.FinishReason,
		Usage: r.Usage, LPMean: meanOf(res.lps), ProviderRefusal: r.ProviderRefusal, StopCategory: r.StopCategory,
		StopExplanation: r.StopExplanation, Injected: r.Injected, Started: started.UTC(), Elapsed: elapsed,
		Provider: ex.p.String(), Traceparent: ex.m.traceparent}
	if tp.Model == "" {
		tp.Model = ex.req.Model
	}
	b := &batch{blobs: [][]byte{output}, recs: []*demur.Record{
		ex.rec(demur.RecTurn, ex.m.agent, tp),
		ex.rec(demur.RecVerdict, "detector", demur.VerdictPayload{Task: ex.m.trace, Agent: ex.m.agent, Attempt: attempt, Verdict: v}),
		ex.rec(demur.RecDecision, "router", demur.DecisionPayload{Task: ex.m.trace, Agent: ex.m.agent, Attempt: attempt, Decision: d}),
	}}
	return a.add(context.WithoutCancel(ctx), b, wait)
}

func (ex *exchange) recordError(ctx context.Context, attempt int, started time.Time, elapsed time.Duration, msg string) {
	ex.s.cfg.Logger.Warn("upstream", "trace", ex.m.trace, "agent", ex.m.agent, "err", msg)
	if ex.s.audit == nil {
		return
	}
	tp := demur.TurnPayload{Task: ex.m.trace, Agent: ex.m.agent, Attempt: attempt, Model: ex.req.Model, Prompt: ex.req.last,
		Started: started.UTC(), Elapsed: elapsed, Error: msg, Provider: ex.p.String(), Traceparent: ex.m.traceparent}
	if ex.draw.Kind.IsFault() {
		tp.Injected = string(ex.draw.Kind)
	}
	_ = ex.s.audit.add(context.WithoutCancel(ctx), &batch{recs: []*demur.Record{ex.rec(demur.RecTurn, ex.m.agent, tp)}}, false)
}

func (ex *exchange) rec(kind demur.RecordKind, actor string, payload any) *demur.Record {
	data, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("proxy: encode %s payload: %v", kind, err)) // our own types always encode
	}
	return &demur.Record{Job: ex.m.job, Stream: ex.m.job, Kind: kind, Actor: actor, Payload: data}
}

func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		sp := s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'
		if !sp && !in {
			n++
		}
		in = !sp
	}
	return n
}
