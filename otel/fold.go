package otel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/demurhq/demur"
)

// Attribute keys the semconv package does not carry yet: the GenAI
// security conventions (apply_guardrail, development status) and the
// deprecated gen_ai.system, still what some backends group by.
const (
	keySystem               = attribute.Key("gen_ai.system")
	keyDecisionType         = attribute.Key("gen_ai.security.decision.type")
	keyDecisionReason       = attribute.Key("gen_ai.security.decision.reason")
	keyTargetType           = attribute.Key("gen_ai.security.target.type")
	keyTargetID             = attribute.Key("gen_ai.security.target.id")
	keyPolicyID             = attribute.Key("gen_ai.security.policy.id")
	keyPolicyName           = attribute.Key("gen_ai.security.policy.name")
	keyGuardianID           = attribute.Key("gen_ai.guardian.id")
	keyGuardianName         = attribute.Key("gen_ai.guardian.name")
	keyGuardianProvider     = attribute.Key("gen_ai.guardian.provider.name")
	keyRiskCategory         = attribute.Key("gen_ai.security.risk.category")
	keyRiskSeverity         = attribute.Key("gen_ai.security.risk.severity")
	keyRiskScore            = attribute.Key("gen_ai.security.risk.score")
	keyRiskMetadata         = attribute.Key("gen_ai.security.risk.metadata")
	eventSecurityFinding    = "gen_ai.security.finding"
	guardianName            = "demur router"
	operationApplyGuardrail = "apply_guardrail"
)

// demur's own attributes.
const (
	keyJob            = attribute.Key("demur.job.id")
	keyJobStatus      = attribute.Key("demur.job.status")
	keyTaskType       = attribute.Key("demur.task_type")
	keySeed           = attribute.Key("demur.seed")
	keySections       = attribute.Key("demur.sections.total")
	keySectionsDone   = attribute.Key("demur.sections.done")
	keyMissing        = attribute.Key("demur.sections.missing")
	keyAgents         = attribute.Key("demur.agents")
	keyTask           = attribute.Key("demur.task.id")
	keyAttempt        = attribute.Key("demur.task.attempt")
	keyAgent          = attribute.Key("demur.agent")
	keyRefresh        = attribute.Key("demur.assign.refresh_context")
	keyReframed       = attribute.Key("demur.assign.reframed")
	keyForce          = attribute.Key("demur.assign.force")
	keyUnfinished     = attribute.Key("demur.unfinished")
	keyWords          = attribute.Key("demur.turn.words")
	keyOutputBytes    = attribute.Key("demur.turn.output_bytes")
	keyLPMean         = attribute.Key("demur.turn.lp_mean")
	keyProvRefusal    = attribute.Key("demur.turn.provider_refusal")
	keyStopCategory   = attribute.Key("demur.turn.stop_category")
	keyInjected       = attribute.Key("demur.turn.injected")
	keyVerdictKind    = attribute.Key("demur.verdict.kind")
	keyVerdictReason  = attribute.Key("demur.verdict.reason")
	keyVerdictReasons = attribute.Key("demur.verdict.reasons")
	keyConfidence     = attribute.Key("demur.verdict.confidence")
	keySource         = attribute.Key("demur.verdict.source")
	keyDetector       = attribute.Key("demur.verdict.detector")
	keyHazard         = attribute.Key("demur.hazard")
	keyRepetition     = attribute.Key("demur.signals.repetition")
	keyCumTokens      = attribute.Key("demur.signals.cum_tokens")
	keyAction         = attribute.Key("demur.action")
	keyRule           = attribute.Key("demur.decision.rule")
	keyRetire         = attribute.Key("demur.decision.retire")
	keyTarget         = attribute.Key("demur.decision.target")
	keyNext           = attribute.Key("demur.decision.next")
	keyPath           = attribute.Key("demur.decision.path")
	keyOverrideID     = attribute.Key("demur.override.id")
	keyOverrideAction = attribute.Key("demur.override.action")
	keyOverrideReason = attribute.Key("demur.override.reason")
	keyRequester      = attribute.Key("demur.override.requester")
	keyRole           = attribute.Key("demur.override.role")
	keyApprovals      = attribute.Key("demur.override.approvals")
	keyOutcome        = attribute.Key("demur.override.outcome")
	keyState          = attribute.Key("demur.agent.state")
	keyStateReason    = attribute.Key("demur.agent.reason")
	keyModel          = attribute.Key("demur.agent.model")
)

// span is one span the fold has complete: IDs, times, attributes. It is
// started and ended at once, with the log's timestamps.
type span struct {
	name   string
	kind   trace.SpanKind
	trace  trace.TraceID
	id     trace.SpanID
	parent trace.SpanContext // invalid: a root
	start  time.Time
	end    time.Time
	attrs  []attribute.KeyValue
	events []event
	status codes.Code
	desc   string
}

type event struct {
	name  string
	at    time.Time
	attrs []attribute.KeyValue
}

type agentInfo struct{ backend, model string }

type pendingTurn struct {
	at time.Time // the record's time
	p  demur.TurnPayload
	v  *demur.Verdict
}

// stream is the fold's state for one job stream. A job (a stream with a
// job.start or a task.assign) is one trace rooted at an invoke_workflow
// span; any other stream (the proxy's) has one trace per task.
type stream struct {
	id       string
	job      bool
	trace    trace.TraceID
	root     trace.SpanID
	start    time.Time
	first    time.Time
	ended    bool
	taskType string
	seed     int64
	sections int
	agents   map[string]agentInfo
	order    []string
	assigns  map[turnKey]time.Time // open invoke_agent spans: when the task was handed out
	frames   map[turnKey]demur.AssignPayload
	turns    map[turnKey]*pendingTurn
	events   []event // the workflow span's, emitted with it at job.end
}

func newStream(id string) *stream {
	return &stream{id: id, agents: map[string]agentInfo{}, assigns: map[turnKey]time.Time{},
		frames: map[turnKey]demur.AssignPayload{}, turns: map[turnKey]*pendingTurn{}}
}

func (s *stream) becomeJob() {
	if !s.job {
		s.job, s.trace = true, JobTraceID(s.id)
		s.root = spanID(s.trace, "invoke_workflow")
	}
}

// fold folds records in seq order and returns the spans they complete.
type fold struct {
	streams map[string]*stream
	// observeOnly: decisions were recorded, not carried out (the proxy's
	// observe mode), so every decision but accept is an audit.
	observeOnly bool
}

func newFold(observeOnly bool) *fold {
	return &fold{streams: map[string]*stream{}, observeOnly: observeOnly}
}

// add folds recs and calls emit for every span they complete. A record it
// cannot decode is skipped, as the feed does: tracing shows what it can,
// and `demur audit verify` is the place to find a damaged log.
func (f *fold) add(recs []*demur.Record, emit func(*span)) {
	for _, r := range recs {
		// Only a job's own stream (and the proxy's, which is its job's)
		// describes the work: overrides and tokens live in streams of
		// their own.
		if r.Stream == "" || r.Stream != r.Job {
			continue
		}
		s := f.streams[r.Stream]
		if s == nil {
			s = newStream(r.Stream)
			f.streams[r.Stream] = s
		}
		if s.ended {
			continue
		}
		if s.first.IsZero() {
			s.first = r.Time
		}
		f.record(s, r, emit)
		if s.ended {
			// Keep the marker so that a late record (a checkpoint) does not
			// start the job again; drop everything else.
			f.streams[r.Stream] = &stream{id: s.id, ended: true}
		}
	}
}

func (f *fold) record(s *stream, r *demur.Record, emit func(*span)) {
	switch r.Kind {
	case demur.RecJobStart:
		var p demur.JobStartPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		s.becomeJob()
		s.start, s.taskType, s.seed, s.sections = r.Time, p.TaskType, p.Seed, p.Sections
		for _, a := range p.Agents {
			s.addAgent(a.ID, agentInfo{backend: a.Backend, model: a.Model})
		}
	case demur.RecAgent:
		var p demur.AgentPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		if p.State == "joined" {
			// A joining agent runs on the job's first backend (a rotate to
			// the fallback model).
			info := agentInfo{model: p.Model}
			if len(s.order) > 0 {
				info.backend = s.agents[s.order[0]].backend
			}
			s.addAgent(p.Agent, info)
		}
		attrs := []attribute.KeyValue{keyAgent.String(p.Agent), keyState.String(p.State), keyStateReason.String(p.Reason)}
		if p.Model != "" {
			attrs = append(attrs, keyModel.String(p.Model))
		}
		s.events = append(s.events, event{name: "demur.agent." + p.State, at: r.Time, attrs: attrs})
	case demur.RecAssign:
		var p demur.AssignPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		s.becomeJob()
		k := turnKey{p.Task, p.Agent, p.Attempt}
		s.assigns[k] = r.Time
		s.frames[k] = p
	case demur.RecTurn:
		var p demur.TurnPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		k := turnKey{p.Task, p.Agent, p.Attempt}
		t := &pendingTurn{at: r.Time, p: p}
		if p.Error != "" {
			// A backend error has no verdict or decision after it: the
			// turn, and in a job its task's hand-out, end here.
			emit(f.chat(s, k, t))
			s.endAssign(k, r.Time, codes.Error, "backend error", emit)
			return
		}
		s.turns[k] = t
	case demur.RecVerdict:
		var p demur.VerdictPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		if t := s.turns[turnKey{p.Task, p.Agent, p.Attempt}]; t != nil {
			v := p.Verdict
			t.v = &v
		}
	case demur.RecDecision:
		var p demur.DecisionPayload
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		k := turnKey{p.Task, p.Agent, p.Attempt}
		t := s.turns[k]
		delete(s.turns, k)
		var parent trace.SpanContext
		var guard trace.SpanID
		tr := s.trace
		switch {
		case t != nil:
			c := f.chat(s, k, t)
			emit(c)
			// The guardrail follows its turn's sampling, which a proxy
			// client's traceparent may have turned off.
			parent, tr = spanContext(c.trace, c.id), c.trace
			if c.parent.IsValid() {
				parent = parent.WithTraceFlags(c.parent.TraceFlags())
			}
			guard = spanID(tr, k.parts(operationApplyGuardrail)...)
		case s.job:
			// A decision no turn led to (an escalation that timed out, a
			// storm's resume) belongs to the workflow.
			parent = spanContext(s.trace, s.root)
			guard = spanID(tr, operationApplyGuardrail, "seq", strconv.FormatInt(r.Seq, 10))
		default:
			return
		}
		emit(f.guardrail(s, k, t, p.Decision, r.Time, tr, guard, parent))
		s.endAssign(k, r.Time, codes.Unset, string(p.Decision.Action), emit)
	case demur.RecOverride:
		if !s.job {
			return
		}
		var p struct {
			Override demur.Override `json:"override"`
			Outcome  string         `json:"outcome"`
		}
		if json.Unmarshal(r.Payload, &p) != nil {
			return
		}
		emit(s.override(r, p.Override, p.Outcome))
	case demur.RecJobEnd:
		var p demur.JobEndPayload
		if json.Unmarshal(r.Payload, &p) != nil || !s.job {
			return
		}
		s.end(r.Time, p, emit)
	}
}

func (s *stream) addAgent(id string, info agentInfo) {
	if _, ok := s.agents[id]; !ok {
		s.order = append(s.order, id)
	}
	s.agents[id] = info
}

func spanContext(t trace.TraceID, s trace.SpanID) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: t, SpanID: s, TraceFlags: trace.FlagsSampled})
}

// provider names the GenAI provider as the conventions do.
func provider(backend string) string {
	switch backend {
	case "openai", "anthropic":
		return backend
	case "sim":
		return "demur.sim"
	case "":
		return "_OTHER"
	}
	return backend
}

// chat is a turn's span: the backend exchange, with its verdict.
func (f *fold) chat(s *stream, k turnKey, t *pendingTurn) *span {
	p := &t.p
	info := s.agents[p.Agent]
	reqModel := info.model
	if reqModel == "" {
		reqModel = p.Model
	}
	prov := p.Provider
	if prov == "" {
		prov = provider(info.backend)
	}
	sp := &span{name: strings.TrimSpace("chat " + reqModel), kind: trace.SpanKindClient, start: p.Started,
		end: p.Started.Add(p.Elapsed)}
	if p.Started.IsZero() {
		sp.start, sp.end = t.at, t.at
	}
	if s.job {
		sp.trace = s.trace
		sp.parent = spanContext(s.trace, spanID(s.trace, k.parts("invoke_agent")...))
	} else {
		sp.trace = taskTraceID(s.id, p.Task)
		if pc := remoteParent(p.Traceparent); pc.IsValid() {
			sp.trace, sp.parent = pc.TraceID(), pc
		}
	}
	sp.id = spanID(sp.trace, k.parts("chat")...)
	sp.attrs = []attribute.KeyValue{
		semconv.GenAIOperationNameChat,
		semconv.GenAIProviderNameKey.String(prov),
		keySystem.String(prov),
		semconv.GenAIConversationID(s.id),
		semconv.GenAIAgentID(p.Agent),
		keyTask.String(p.Task), keyAttempt.Int(p.Attempt),
	}
	if reqModel != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIRequestModel(reqModel))
	}
	if p.Error != "" {
		sp.status, sp.desc = codes.Error, p.Error
		sp.attrs = append(sp.attrs, semconv.ErrorTypeOther)
		if p.Injected != "" {
			sp.attrs = append(sp.attrs, keyInjected.String(p.Injected))
		}
		return sp
	}
	if p.Model != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIResponseModel(p.Model))
	}
	sp.attrs = append(sp.attrs,
		semconv.GenAIUsageInputTokens(p.Usage.PromptTokens),
		semconv.GenAIUsageOutputTokens(p.Usage.CompletionTokens),
		keyWords.Int(p.Words), keyOutputBytes.Int(p.OutputBytes))
	if p.FinishReason != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIResponseFinishReasons(p.FinishReason))
	}
	if p.LPMean != 0 {
		sp.attrs = append(sp.attrs, keyLPMean.Float64(p.LPMean))
	}
	if p.ProviderRefusal != "" {
		// Whether the provider refused, not its words: span attributes
		// carry no model output.
		sp.attrs = append(sp.attrs, keyProvRefusal.Bool(true))
	}
	if p.StopCategory != "" {
		sp.attrs = append(sp.attrs, keyStopCategory.String(p.StopCategory))
	}
	if p.Injected != "" {
		sp.attrs = append(sp.attrs, keyInjected.String(p.Injected))
	}
	if v := t.v; v != nil {
		reasons := make([]string, len(v.Reasons))
		for i, r := range v.Reasons {
			reasons[i] = string(r)
		}
		sp.attrs = append(sp.attrs, keyVerdictKind.String(string(v.Kind)), keyConfidence.Float64(v.Confidence),
			keySource.String(string(v.Source)), keyDetector.String(v.Detector), keyHazard.Float64(v.Signals.Hazard),
			keyRepetition.Float64(v.Signals.Repetition))
		if len(reasons) > 0 {
			sp.attrs = append(sp.attrs, keyVerdictReason.String(reasons[0]), keyVerdictReasons.StringSlice(reasons))
		}
		if v.Signals.CumTokens > 0 {
			sp.attrs = append(sp.attrs, keyCumTokens.Int64(v.Signals.CumTokens))
		}
	}
	return sp
}

// remoteParent reads a W3C traceparent the proxy recorded for a turn.
func remoteParent(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// decisionType maps a router action to the GenAI security conventions'
// decision types: the output passes (allow), passes with the agent's next
// task changed by the early warning (warn), is replaced by redoing the work
// differently (modify), or the work item stops for a person or for good
// (deny). A decision recorded but not carried out is an audit.
func (f *fold) decisionType(d demur.Decision) string {
	var t string
	switch d.Action {
	case demur.ActionAccept, demur.ActionForce, demur.ActionResume:
		t = "allow"
		if d.Next != "" {
			t = "warn"
		}
	case demur.ActionRetry, demur.ActionReframe, demur.ActionRefreshContext, demur.ActionRotate,
		demur.ActionReassign, demur.ActionSplit:
		t = "modify"
	default: // escalate, abort, pause
		t = "deny"
	}
	if f.observeOnly && t != "allow" {
		return "audit"
	}
	return t
}

// guardrail is a decision's span: the detector's verdict judged by the
// router's policy, a child of the turn it judged. It runs from the end of
// the turn to the decision's record, the time the output waited for its
// judgement.
func (f *fold) guardrail(s *stream, k turnKey, t *pendingTurn, d demur.Decision, at time.Time, tr trace.TraceID, id trace.SpanID, parent trace.SpanContext) *span {
	typ := f.decisionType(d)
	sp := &span{name: operationApplyGuardrail + " " + guardianName, kind: trace.SpanKindInternal, trace: tr, id: id,
		parent: parent, start: at, end: at}
	if t != nil && !t.p.Started.IsZero() {
		if e := t.p.Started.Add(t.p.Elapsed); e.Before(at) {
			sp.start = e
		}
	}
	sp.attrs = []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(operationApplyGuardrail),
		keyDecisionType.String(typ),
		keyTargetType.String("llm_output"),
		keyGuardianName.String(guardianName), keyGuardianID.String("demur.router"), keyGuardianProvider.String("demur"),
		semconv.GenAIConversationID(s.id),
		keyAction.String(string(d.Action)),
	}
	if k.task != "" {
		sp.attrs = append(sp.attrs, keyTargetID.String(fmt.Sprintf("%s/%s/%d", k.task, k.agent, k.attempt)), keyTask.String(k.task), keyAttempt.Int(k.attempt))
	}
	if k.agent != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIAgentID(k.agent))
	}
	if d.Rule != "" {
		sp.attrs = append(sp.attrs, keyPolicyID.String(d.Rule), keyRule.String(d.Rule))
	}
	if s.taskType != "" {
		sp.attrs = append(sp.attrs, keyPolicyName.String(s.taskType))
	}
	var v *demur.Verdict
	if t != nil {
		v = t.v
	}
	if typ != "allow" {
		// Low-cardinality, as the conventions ask: the verdict's kind and
		// first reason, and the action; the full path is in demur.*.
		why := string(d.Action)
		if v != nil {
			why = string(v.Kind)
			if len(v.Reasons) > 0 {
				why += " (" + string(v.Reasons[0]) + ")"
			}
			why += ": " + string(d.Action)
		}
		sp.attrs = append(sp.attrs, keyDecisionReason.String(why))
	}
	if d.Retire {
		sp.attrs = append(sp.attrs, keyRetire.Bool(true))
	}
	if d.Target != "" {
		sp.attrs = append(sp.attrs, keyTarget.String(d.Target))
	}
	if d.Next != "" {
		sp.attrs = append(sp.attrs, keyNext.String(string(d.Next)))
	}
	if len(d.Path) > 0 {
		path := make([]string, len(d.Path))
		for i, st := range d.Path {
			mark := "-"
			if st.Matched {
				mark = "+"
			}
			path[i] = fmt.Sprintf("%s %s: %s", mark, st.Rule, st.Why)
		}
		sp.attrs = append(sp.attrs, keyPath.StringSlice(path))
	}
	if v != nil && v.Kind != demur.KindComply && v.Kind != "" {
		meta := []string{"source:" + string(v.Source)}
		for _, r := range v.Reasons {
			meta = append(meta, "reason:"+string(r))
		}
		sp.events = append(sp.events, event{name: eventSecurityFinding, at: sp.start, attrs: []attribute.KeyValue{
			keyRiskCategory.String("demur:" + string(v.Kind)),
			keyRiskSeverity.String(severity(v.Kind)),
			keyRiskScore.Float64(v.Confidence),
			keyRiskMetadata.StringSlice(meta),
		}})
	}
	return sp
}

func severity(k demur.Kind) string {
	switch k {
	case demur.KindRefuse:
		return "high"
	case demur.KindPartial:
		return "medium"
	}
	return "low"
}

// endAssign ends the invoke_agent span of a task's hand-out, if the log
// opened one.
func (s *stream) endAssign(k turnKey, at time.Time, status codes.Code, action string, emit func(*span)) {
	start, ok := s.assigns[k]
	if !ok || !s.job {
		return
	}
	a := s.frames[k]
	delete(s.assigns, k)
	delete(s.frames, k)
	sp := s.invokeAgent(k, start, at, a)
	if status == codes.Error {
		sp.status, sp.desc = codes.Error, action
	} else if action != "" {
		sp.attrs = append(sp.attrs, keyAction.String(action))
	}
	emit(sp)
}

// invokeAgent is the span of one hand-out of a task to an agent, from the
// assignment to the decision on its result.
func (s *stream) invokeAgent(k turnKey, start, end time.Time, a demur.AssignPayload) *span {
	info := s.agents[k.agent]
	sp := &span{name: "invoke_agent " + k.agent, kind: trace.SpanKindInternal, trace: s.trace,
		id: spanID(s.trace, k.parts("invoke_agent")...), parent: spanContext(s.trace, s.root), start: start, end: end}
	if end.Before(start) {
		sp.end = start
	}
	sp.attrs = []attribute.KeyValue{
		semconv.GenAIOperationNameInvokeAgent,
		semconv.GenAIProviderNameKey.String(provider(info.backend)),
		semconv.GenAIAgentName(k.agent), semconv.GenAIAgentID(k.agent),
		semconv.GenAIConversationID(s.id),
		keyTask.String(k.task), keyAttempt.Int(k.attempt),
	}
	if info.model != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIRequestModel(info.model))
	}
	if a.Refresh {
		sp.attrs = append(sp.attrs, keyRefresh.Bool(true))
	}
	if a.Frame != "" {
		sp.attrs = append(sp.attrs, keyReframed.Bool(true))
	}
	if a.Force {
		sp.attrs = append(sp.attrs, keyForce.Bool(true))
	}
	return sp
}

// override is an override the coordinator carried out (or refused), from
// its request to the record.
func (s *stream) override(r *demur.Record, o demur.Override, outcome string) *span {
	start := o.Created
	if start.IsZero() || start.After(r.Time) {
		start = r.Time
	}
	sp := &span{name: "override " + string(o.Action), kind: trace.SpanKindInternal, trace: s.trace,
		id: spanID(s.trace, "override", strconv.FormatInt(r.Seq, 10)), parent: spanContext(s.trace, s.root),
		start: start, end: r.Time}
	sp.attrs = []attribute.KeyValue{
		keyOverrideID.String(o.ID), keyOverrideAction.String(string(o.Action)), keyOutcome.String(outcome),
		keyRequester.String(o.Requester), keyRole.String(string(o.Role)), keyApprovals.Int(len(o.Approvals)),
		keyOverrideReason.String(o.Reason), semconv.GenAIConversationID(s.id),
	}
	if o.Task != "" {
		sp.attrs = append(sp.attrs, keyTask.String(o.Task))
	}
	if o.Agent != "" {
		sp.attrs = append(sp.attrs, semconv.GenAIAgentID(o.Agent))
	}
	if outcome != demur.OverrideApplied {
		sp.status, sp.desc = codes.Error, outcome
	}
	return sp
}

// end closes what is still open at job.end and emits the workflow span.
func (s *stream) end(at time.Time, p demur.JobEndPayload, emit func(*span)) {
	for k, start := range s.assigns {
		sp := s.invokeAgent(k, start, at, s.frames[k])
		sp.attrs = append(sp.attrs, keyUnfinished.Bool(true))
		emit(sp)
	}
	start := s.start
	if start.IsZero() {
		start = s.first
	}
	sp := &span{name: "invoke_workflow " + s.id, kind: trace.SpanKindInternal, trace: s.trace, id: s.root,
		start: start, end: at, events: s.events}
	sp.attrs = []attribute.KeyValue{
		semconv.GenAIOperationNameInvokeWorkflow,
		semconv.GenAIWorkflowName(s.id),
		semconv.GenAIConversationID(s.id),
		keyJob.String(s.id), keyTaskType.String(s.taskType), keySeed.Int64(s.seed),
		keySections.Int(p.Total), keySectionsDone.Int(p.Done), keyMissing.Int(len(p.Missing)),
		keyAgents.Int(len(s.order)), keyJobStatus.String(p.Status),
	}
	if p.Status != "completed" {
		sp.status, sp.desc = codes.Error, fmt.Sprintf("%s: %d of %d sections written", p.Status, p.Done, p.Total)
	}
	emit(sp)
	s.ended = true
}
