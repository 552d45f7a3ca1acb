// Package sla turns the audit log into service-level indicators, checks
// them against objectives written in YAML, and computes error budgets,
// multi-window burn-rate alerts (as in Google's SRE workbook, "Alerting on
// SLOs") and contract credits for a period.
//
// Every objective is a ceiling on the share of bad events of one
// indicator:
//
//	refusal_rate      events: turns;          bad: a refuse or partial verdict
//	abandonment_rate  events: work items at job end; bad: the item was not written
//	recovery_time     events: refused items;  bad: not written within `within`
//
// so that one error-budget and burn-rate computation serves all three.
package sla

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/goccy/go-yaml"
)

// Indicators.
const (
	RefusalRate     = "refusal_rate"
	AbandonmentRate = "abandonment_rate"
	RecoveryTime    = "recovery_time"
)

// Objective is one SLO: at most Max of the indicator's events may be bad.
type Objective struct {
	Name string `yaml:"name" json:"name"`
	SLI  string `yaml:"sli" json:"sli"`
	// Max is the ceiling on the bad share, 0 < Max < 1; the error budget.
	Max float64 `yaml:"max" json:"max"`
	// Window is the compliance window (default 1h): the period is cut into
	// windows and each window with events must stay under Max.
	Window string `yaml:"window,omitempty" json:"window,omitempty"`
	// Within is recovery_time's bound on refusal-to-written.
	Within string `yaml:"within,omitempty" json:"within,omitempty"`
	// TaskType and Model, when set, restrict the objective's events.
	TaskType string `yaml:"task_type,omitempty" json:"task_type,omitempty"`
	Model    string `yaml:"model,omitempty" json:"model,omitempty"`

	window, within time.Duration
}

// Rule is a multi-window burn-rate alert: it fires when the burn rate over
// both the long and the short window reaches Burn. The short window makes
// the alert reset soon after the burning stops.
type Rule struct {
	Long     string  `yaml:"long" json:"long"`
	Short    string  `yaml:"short" json:"short"`
	Burn     float64 `yaml:"burn" json:"burn"`
	Severity string  `yaml:"severity" json:"severity"`

	long, short time.Duration
}

// DefaultRules are the SRE workbook's recommended rules for a 30-day SLO.
var DefaultRules = []Rule{
	{Long: "1h", Short: "5m", Burn: 14.4, Severity: "page"},
	{Long: "6h", Short: "30m", Burn: 6, Severity: "page"},
	{Long: "24h", Short: "2h", Burn: 3, Severity: "ticket"},
	{Long: "72h", Short: "6h", Burn: 1, Severity: "ticket"},
}

// Alerts says where alerts go.
type Alerts struct {
	// Webhook receives a JSON POST per alert that starts or stops firing.
	Webhook string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	// Retries is how many times a failed delivery is retried (default 3).
	Retries int    `yaml:"retries,omitempty" json:"retries,omitempty"`
	Rules   []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Credit is a contract credit: Percent of the period's fee when an
// objective's compliance falls below Below.
type Credit struct {
	Below   float64 `yaml:"below" json:"below"`
	Percent float64 `yaml:"percent" json:"percent"`
}

// Spec is an SLA file.
type Spec struct {
	// Period is the error-budget period (default 720h, 30 days).
	Period     string      `yaml:"period,omitempty" json:"period,omitempty"`
	Objectives []Objective `yaml:"objectives" json:"objectives"`
	Alerts     Alerts      `yaml:"alerts,omitempty" json:"alerts"`
	Credits    []Credit    `yaml:"credits,omitempty" json:"credits,omitempty"`

	period time.Duration
}

// Load reads and checks an SLA file.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SLA file: %w", err)
	}
	return Parse(data)
}

// Parse decodes and checks an SLA file's contents; unknown keys are errors,
// since a misspelt objective would otherwise be silently never checked.
func Parse(data []byte) (*Spec, error) {
	var s Spec
	if err := yaml.UnmarshalWithOptions(data, &s, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("SLA file: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("SLA file: %w", err)
	}
	return &s, nil
}

func duration(field, v, def string) (time.Duration, error) {
	if v == "" {
		v = def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration", field, v)
	}
	return d, nil
}

func (s *Spec) check() error {
	var errs []error
	var err error
	if s.period, err = duration("period", s.Period, "720h"); err != nil {
		errs = append(errs, err)
	}
	if len(s.Objectives) == 0 {
		errs = append(errs, errors.New("no objectives"))
	}
	names := map[string]bool{}
	for i := range s.Objectives {
		o := &s.Objectives[i]
		at := fmt.Sprintf("objectives[%d]", i)
		if o.Name == "" {
			o.Name = fmt.Sprintf("%s-%d", o.SLI, i+1)
		}
		if names[o.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name %q", at, o.Name))
		}
		names[o.Name] = true
		switch o.SLI {
		case RefusalRate, AbandonmentRate:
			if o.Within != "" {
				errs = append(errs, fmt.Errorf("%s: within applies to recovery_time only", at))
			}
		case RecoveryTime:
			if o.within, err = duration(at+".within", o.Within, ""); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("%s: sli %q: want refusal_rate, abandonment_rate or recovery_time", at, o.SLI))
		}
		if !(o.Max > 0 && o.Max < 1) {
			errs = append(errs, fmt.Errorf("%s: max %v: want a share strictly between 0 and 1", at, o.Max))
		}
		if o.window, err = duration(at+".window", o.Window, "1h"); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Alerts.Retries == 0 {
		s.Alerts.Retries = 3
	}
	if s.Alerts.Retries < 0 || s.Alerts.Retries > 10 {
		errs = append(errs, fmt.Errorf("alerts.retries %d: want 0-10", s.Alerts.Retries))
	}
	if len(s.Alerts.Rules) == 0 {
		s.Alerts.Rules = append([]Rule(nil), DefaultRules...)
	}
	for i := range s.Alerts.Rules {
		r := &s.Alerts.Rules[i]
		at := fmt.Sprintf("alerts.rules[%d]", i)
		if r.long, err = duration(at+".long", r.Long, ""); err != nil {
			errs = append(errs, err)
		}
		if r.short, err = duration(at+".short", r.Short, ""); err != nil {
			errs = append(errs, err)
		}
		if r.short > r.long {
			errs = append(errs, fmt.Errorf("%s: short window longer than long", at))
		}
		if r.Burn <= 0 {
			errs = append(errs, fmt.Errorf("%s: burn must be positive", at))
		}
		if r.Severity == "" {
			r.Severity = "page"
		}
	}
	for i, c := range s.Credits {
		if !(c.Below > 0 && c.Below <= 1) || c.Percent < 0 || c.Percent > 100 {
			errs = append(errs, fmt.Errorf("credits[%d]: below must be in (0,1] and percent in [0,100]", i))
		}
	}
	return errors.Join(errs...)
}

// PeriodDuration is the error-budget period.
func (s *Spec) PeriodDuration() time.Duration { return s.period }
