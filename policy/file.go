package policy

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/yamlpos"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the shipped policy file, byte for byte.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

var defaultFile = mustParseDefault()

func mustParseDefault() *File {
	f, err := Parse("policy/default.yaml", defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("policy: the embedded default.yaml is invalid: %v", err)) // caught by every test run
	}
	return f
}

// DefaultFile returns the shipped policy file's rules.
func DefaultFile() *File { return defaultFile }

// File is a parsed, validated policy file: one Policy per task type.
type File struct {
	// Name is the file the policy was read from.
	Name string
	// Version is the file format's version (1).
	Version int
	types   map[string]*Policy
}

// Rules returns the policy for taskType. A type the file does not know
// (a job spec may declare any name) gets the rules of "other"; Resolve
// maps such names to a known type first. The Policy is the caller's own
// copy: a job that adjusts it (say, from its spec's limits) changes no
// other job's rules.
func (f *File) Rules(taskType string) *Policy {
	p, ok := f.types[taskType]
	if !ok {
		p = f.types[TypeOther]
	}
	return p.clone()
}

// OverrideRule returns the least role that may request override action a
// on a task of taskType and how many approvals it needs. An action the
// policy does not list is reserved to admins with two approvals: a gap in a
// file must not open a door.
func (f *File) OverrideRule(taskType string, a demur.Action) (demur.OperatorRole, int) {
	if r, ok := f.Rules(taskType).Overrides[a]; ok {
		return r.Role, r.Approvals
	}
	return demur.RoleAdmin, 2
}

// Error is a policy file error at a position.
type Error = yamlpos.Error

// ErrInvalid is wrapped by every error that rejects a policy file.
var ErrInvalid = errors.New("invalid policy file")

// Errors is every problem found in one file, in file order.
type Errors []*Error

// Error lists every error, one a line.
func (es Errors) Error() string { return yamlpos.Lines(es) }

// Is makes errors.Is(err, ErrInvalid) true for policy file errors.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// The file's YAML shape. Pointers tell "not given" from zero, so that a
// task type inherits from defaults only what it leaves out.
type fileSpec struct {
	Version   int                  `yaml:"version"`
	Defaults  *ruleSpec            `yaml:"defaults"`
	TaskTypes map[string]*ruleSpec `yaml:"task_types"`
}

type ruleSpec struct {
	Risk          *string                  `yaml:"risk"`
	MinConfidence *float64                 `yaml:"min_confidence"`
	On            map[string][]string      `yaml:"on"`
	Limits        *limitsSpec              `yaml:"limits"`
	EarlyWarning  *earlyWarningSpec        `yaml:"early_warning"`
	Storm         *stormSpec               `yaml:"storm"`
	Escalate      *escalateSpec            `yaml:"escalate"`
	FallbackModel *string                  `yaml:"fallback_model"`
	Overrides     map[string]*overrideSpec `yaml:"overrides"`
}

type limitsSpec struct {
	RetireAfter    *int `yaml:"retire_after"`
	MaxAttempts    *int `yaml:"max_attempts"`
	MaxJobRefusals *int `yaml:"max_job_refusals"`
}

type earlyWarningSpec struct {
	Hazard *float64 `yaml:"hazard"`
	Action *string  `yaml:"action"`
}

type stormSpec struct {
	Window         *int     `yaml:"window"`
	MaxRefusalRate *float64 `yaml:"max_refusal_rate"`
	Action         *string  `yaml:"action"`
}

type escalateSpec struct {
	Timeout *string `yaml:"timeout"`
	Default *string `yaml:"default"`
}

type overrideSpec struct {
	Role      *string `yaml:"role"`
	Approvals *int    `yaml:"approvals"`
}

// Where each action may appear. force is never a router action: only an
// authorized override forces.
var (
	ladderActions = actionSet(demur.ActionAccept, demur.ActionRetry, demur.ActionReframe, demur.ActionRefreshContext,
		demur.ActionRotate, demur.ActionReassign, demur.ActionSplit, demur.ActionEscalate, demur.ActionAbort)
	earlyActions = actionSet(demur.ActionAccept, demur.ActionRotate, demur.ActionRefreshContext, demur.ActionReframe,
		demur.ActionReassign, demur.ActionSplit)
	stormActions    = actionSet(demur.ActionEscalate, demur.ActionPause, demur.ActionAbort)
	timeoutActions  = actionSet(demur.ActionAccept, demur.ActionAbort, demur.ActionRetry, demur.ActionReframe, demur.ActionRefreshContext, demur.ActionRotate, demur.ActionReassign, demur.ActionSplit)
	overrideActions = actionSet(demur.ActionForce, demur.ActionAccept, demur.ActionAbort, demur.ActionPause, demur.ActionResume)
	allActions      = actionSet(demur.ActionAccept, demur.ActionRetry, demur.ActionReframe, demur.ActionRefreshContext,
		demur.ActionRotate, demur.ActionReassign, demur.ActionSplit, demur.ActionEscalate, demur.ActionForce,
		demur.ActionAbort, demur.ActionPause, demur.ActionResume)
)

type actions []demur.Action

func actionSet(as ...demur.Action) actions { return as }

func (as actions) has(a demur.Action) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func (as actions) String() string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// Load reads and validates the policy file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a policy file; name names it in errors,
// which have the form name:line:column: message.
func Parse(name string, data []byte) (*File, error) {
	af, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	if len(af.Docs) == 0 || af.Docs[0].Body == nil {
		return nil, Errors{{File: name, Line: 1, Column: 1, Msg: "empty policy file (want version: 1 and task_types)"}}
	}
	if len(af.Docs) > 1 {
		return nil, Errors{{File: name, Line: 1, Column: 1, Msg: fmt.Sprintf("a policy file is one YAML document, found %d", len(af.Docs))}}
	}
	var spec fileSpec
	if err := yaml.NodeToValue(af.Docs[0].Body, &spec, yaml.DisallowUnknownField()); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	v := &validator{file: name, root: af.Docs[0].Body}
	f := v.build(&spec)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool {
			a, b := v.errs[i], v.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		})
		return nil, v.errs
	}
	return f, nil
}

func yamlError(file string, err error) *Error { return yamlpos.FromDecode(file, err, "actions") }

// validator turns a decoded spec into Policies, collecting every error
// with its position in the file.
type validator struct {
	file string
	root ast.Node
	errs Errors
}

// seg is one step of a path into the file: a mapping key or a list index.
type seg = any

func (v *validator) bad(onKey bool, path []seg, format string, args ...any) {
	e := &Error{File: v.file, Line: 1, Column: 1, Msg: fmt.Sprintf(format, args...)}
	if len(path) == 0 {
		v.errs = append(v.errs, e) // the whole file: line 1
		return
	}
	if n := locate(v.root, onKey, path); n != nil && n.GetToken() != nil {
		pos := n.GetToken().Position
		e.Line, e.Column = pos.Line, pos.Column
	}
	v.errs = append(v.errs, e)
}

// locate returns the node at path, or its key when onKey; nil when the
// path is not in the file. It walks the AST itself because keys may hold
// characters a YAML path would need to quote.
func locate(n ast.Node, onKey bool, path []seg) ast.Node {
	for i, s := range path {
		last := i == len(path)-1
		switch s := s.(type) {
		case string:
			var values []*ast.MappingValueNode
			switch m := unwrap(n).(type) {
			case *ast.MappingNode:
				values = m.Values
			case *ast.MappingValueNode:
				values = []*ast.MappingValueNode{m}
			default:
				return nil
			}
			var found *ast.MappingValueNode
			for _, mv := range values {
				if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == s {
					found = mv
				}
			}
			if found == nil {
				return nil
			}
			if last && onKey {
				return found.Key
			}
			n = found.Value
		case int:
			sq, ok := unwrap(n).(*ast.SequenceNode)
			if !ok || s >= len(sq.Values) {
				return nil
			}
			n = sq.Values[s]
		}
	}
	return n
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.TagNode:
			n = t.Value
		case *ast.AnchorNode:
			n = t.Value
		default:
			return n
		}
	}
}

func join(base []seg, more ...seg) []seg {
	return append(append([]seg(nil), base...), more...)
}

func (v *validator) build(s *fileSpec) *File {
	f := &File{Name: v.file, Version: s.Version, types: map[string]*Policy{}}
	switch {
	case locate(v.root, false, []seg{"version"}) == nil:
		v.bad(false, nil, "version is required (version: 1)")
	case s.Version != 1:
		v.bad(false, []seg{"version"}, "unsupported version %d (want 1)", s.Version)
	}
	def := s.Defaults
	if def == nil {
		def = &ruleSpec{}
	}
	if def.Risk != nil {
		v.bad(true, []seg{"defaults", "risk"}, "risk is set per task type, not in defaults")
	}
	v.check(def, []seg{"defaults"})
	for name, r := range s.TaskTypes {
		if !KnownType(name) {
			v.bad(true, []seg{"task_types", name}, "unknown task type %q (want one of %s)", name, strings.Join(TaskTypes, ", "))
			continue
		}
		if r == nil {
			r = &ruleSpec{}
		}
		v.check(r, []seg{"task_types", name})
	}
	for _, name := range TaskTypes {
		r := s.TaskTypes[name]
		if r == nil {
			r = &ruleSpec{}
		}
		f.types[name] = merge(name, r, def)
	}
	return f
}

// check reports every invalid value of one rule section.
func (v *validator) check(r *ruleSpec, at []seg) {
	if r.Risk != nil {
		if _, err := ParseRisk(*r.Risk); err != nil {
			v.bad(false, join(at, "risk"), "%v", err)
		}
	}
	if r.MinConfidence != nil && (*r.MinConfidence < 0 || *r.MinConfidence > 1) {
		v.bad(false, join(at, "min_confidence"), "min_confidence must be within 0–1, got %g", *r.MinConfidence)
	}
	kinds := make([]string, 0, len(r.On))
	for k := range r.On {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ladder := r.On[k]
		switch demur.Kind(k) {
		case demur.KindRefuse, demur.KindPartial, demur.KindDegraded:
		case demur.KindComply:
			v.bad(true, join(at, "on", k), "comply takes no ladder: a compliant turn is accepted (early_warning acts on it)")
			continue
		default:
			v.bad(true, join(at, "on", k), "unknown verdict kind %q (want refuse, partial or degraded)", k)
			continue
		}
		if len(ladder) == 0 {
			v.bad(false, join(at, "on", k), "the %s ladder is empty: give at least one action (accept to do nothing)", k)
		}
		for i, a := range ladder {
			v.action(ladderActions, demur.Action(a), join(at, "on", k, i), "a ladder action")
		}
	}
	if l := r.Limits; l != nil {
		v.nonNegative(l.RetireAfter, join(at, "limits", "retire_after"), "retire_after")
		v.nonNegative(l.MaxJobRefusals, join(at, "limits", "max_job_refusals"), "max_job_refusals")
		if l.MaxAttempts != nil && *l.MaxAttempts < 1 {
			v.bad(false, join(at, "limits", "max_attempts"), "max_attempts must be ≥ 1, got %d", *l.MaxAttempts)
		}
	}
	if e := r.EarlyWarning; e != nil {
		ew := join(at, "early_warning")
		if e.Hazard == nil {
			v.bad(true, ew, "early_warning.hazard is required")
		} else if *e.Hazard < 0 || *e.Hazard > 1 {
			v.bad(false, join(ew, "hazard"), "early_warning.hazard must be within 0–1, got %g", *e.Hazard)
		}
		if e.Action == nil {
			v.bad(true, ew, "early_warning.action is required")
		} else {
			v.action(earlyActions, demur.Action(*e.Action), join(ew, "action"), "an early-warning action")
		}
	}
	if s := r.Storm; s != nil {
		st := join(at, "storm")
		if s.Window == nil {
			v.bad(true, st, "storm.window is required")
		} else if *s.Window < 1 {
			v.bad(false, join(st, "window"), "storm.window must be ≥ 1 turn, got %d", *s.Window)
		}
		if s.MaxRefusalRate == nil {
			v.bad(true, st, "storm.max_refusal_rate is required")
		} else if *s.MaxRefusalRate < 0 || *s.MaxRefusalRate > 1 {
			v.bad(false, join(st, "max_refusal_rate"), "storm.max_refusal_rate must be within 0–1, got %g", *s.MaxRefusalRate)
		}
		if s.Action != nil {
			v.action(stormActions, demur.Action(*s.Action), join(st, "action"), "a storm action")
		}
	}
	if e := r.Escalate; e != nil {
		if e.Timeout != nil {
			if d, err := time.ParseDuration(*e.Timeout); err != nil {
				v.bad(false, join(at, "escalate", "timeout"), "escalate.timeout %q is not a duration (e.g. 10m, 1h30m)", *e.Timeout)
			} else if d <= 0 {
				v.bad(false, join(at, "escalate", "timeout"), "escalate.timeout must be > 0, got %s", *e.Timeout)
			}
		}
		if e.Default != nil {
			v.action(timeoutActions, demur.Action(*e.Default), join(at, "escalate", "default"), "an action on escalation timeout")
		}
	}
	if r.FallbackModel != nil && strings.TrimSpace(*r.FallbackModel) == "" {
		v.bad(false, join(at, "fallback_model"), "fallback_model is empty")
	}
	acts := make([]string, 0, len(r.Overrides))
	for a := range r.Overrides {
		acts = append(acts, a)
	}
	sort.Strings(acts)
	for _, a := range acts {
		o := r.Overrides[a]
		oa := join(at, "overrides", a)
		if !overrideActions.has(demur.Action(a)) {
			v.bad(true, oa, "unknown override action %q (want one of %s)", a, overrideActions)
			continue
		}
		if o == nil || o.Role == nil {
			v.bad(true, oa, "overrides.%s.role is required", a)
		} else {
			switch demur.OperatorRole(*o.Role) {
			case demur.RoleOperator, demur.RoleAdmin:
			case demur.RoleViewer:
				v.bad(false, join(oa, "role"), "role viewer may not request overrides (want operator or admin)")
			default:
				v.bad(false, join(oa, "role"), "unknown role %q (want operator or admin)", *o.Role)
			}
		}
		if o != nil && o.Approvals != nil && *o.Approvals < 1 {
			v.bad(false, join(oa, "approvals"), "approvals must be ≥ 1 (the requester counts), got %d", *o.Approvals)
		}
	}
}

func (v *validator) nonNegative(x *int, at []seg, name string) {
	if x != nil && *x < 0 {
		v.bad(false, at, "%s must be ≥ 0 (0 means no limit), got %d", name, *x)
	}
}

func (v *validator) action(allowed actions, a demur.Action, at []seg, what string) {
	switch {
	case allowed.has(a):
	case !allActions.has(a):
		v.bad(false, at, "unknown action %q (want one of %s)", a, allowed)
	case a == demur.ActionForce:
		v.bad(false, at, "force is not %s: only an authorized override forces", what)
	default:
		v.bad(false, at, "%s is not %s (want one of %s)", a, what, allowed)
	}
}

// merge builds a task type's Policy: each value from the type's section,
// else the file's defaults, else the built-in baseline (Default's values).
// Only valid specs reach the Policy, so conversions cannot fail here.
func merge(name string, t, d *ruleSpec) *Policy {
	p := Default()
	p.TaskType, p.Risk = name, intrinsicRisk[name]
	if t.Risk != nil {
		p.Risk, _ = ParseRisk(*t.Risk)
	}
	for _, r := range []*ruleSpec{d, t} { // later sections win
		if r.MinConfidence != nil {
			p.MinConfidence = *r.MinConfidence
		}
		for k, ladder := range r.On {
			as := make([]demur.Action, len(ladder))
			for i, a := range ladder {
				as[i] = demur.Action(a)
			}
			p.On[demur.Kind(k)] = as
		}
		if l := r.Limits; l != nil {
			setInt(&p.RetireAfter, l.RetireAfter)
			setInt(&p.MaxAttempts, l.MaxAttempts)
			setInt(&p.MaxJobRefusals, l.MaxJobRefusals)
		}
		if e := r.EarlyWarning; e != nil && e.Hazard != nil && e.Action != nil {
			p.EarlyWarning = &EarlyWarning{Hazard: *e.Hazard, Action: demur.Action(*e.Action)}
		}
		if s := r.Storm; s != nil && s.Window != nil && s.MaxRefusalRate != nil {
			p.Storm = &Storm{Window: *s.Window, MaxRefusalRate: *s.MaxRefusalRate, Action: demur.ActionEscalate}
			if s.Action != nil {
				p.Storm.Action = demur.Action(*s.Action)
			}
		}
		if e := r.Escalate; e != nil {
			if e.Timeout != nil {
				p.Escalate.Timeout, _ = time.ParseDuration(*e.Timeout)
			}
			if e.Default != nil {
				p.Escalate.Default = demur.Action(*e.Default)
			}
		}
		if r.FallbackModel != nil {
			p.Fallback = *r.FallbackModel
		}
		for a, o := range r.Overrides {
			rule := OverrideRule{Approvals: 1}
			if o != nil && o.Role != nil {
				rule.Role = demur.OperatorRole(*o.Role)
			}
			if o != nil && o.Approvals != nil {
				rule.Approvals = *o.Approvals
			}
			p.Overrides[demur.Action(a)] = rule
		}
	}
	return p
}

func setInt(dst *int, src *int) {
	if src != nil {
		*dst = *src
	}
}
