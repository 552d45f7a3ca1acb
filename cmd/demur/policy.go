package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	demur "github.com/demurhq/demur"
	"github.com/demurhq/demur/policy"
)

func init() { addCommand(newPolicyCmd) }

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check router policy files and the task-type classifier",
	}
	cmd.AddCommand(newPolicyCheckCmd(), newPolicyClassifyCmd())
	return cmd
}

// rulesView is the JSON form of one task type's resolved rules.
type rulesView struct {
	Risk           string                        `json:"risk"`
	MinConfidence  float64                       `json:"min_confidence"`
	On             map[demur.Kind][]demur.Action `json:"on"`
	RetireAfter    int                           `json:"retire_after"`
	MaxAttempts    int                           `json:"max_attempts"`
	MaxJobRefusals int                           `json:"max_job_refusals"`
	EarlyWarning   *policy.EarlyWarning          `json:"early_warning,omitempty"`
	Storm          *policy.Storm                 `json:"storm,omitempty"`
	EscalateAfter  string                        `json:"escalate_timeout"`
	EscalateThen   demur.Action                  `json:"escalate_default"`
	Fallback       string                        `json:"fallback_model,omitempty"`
	Overrides      map[demur.Action]overrideView `json:"overrides"`
}

type overrideView struct {
	Role      demur.OperatorRole `json:"role"`
	Approvals int                `json:"approvals"`
}

func viewOf(p *policy.Policy) rulesView {
	v := rulesView{Risk: p.Risk.String(), MinConfidence: p.MinConfidence, On: p.On,
		RetireAfter: p.RetireAfter, MaxAttempts: p.MaxAttempts, MaxJobRefusals: p.MaxJobRefusals,
		EarlyWarning: p.EarlyWarning, Storm: p.Storm, EscalateAfter: p.Escalate.Timeout.String(),
		EscalateThen: p.Escalate.Default, Fallback: p.Fallback, Overrides: map[demur.Action]overrideView{}}
	for a, o := range p.Overrides {
		v.Overrides[a] = overrideView{Role: o.Role, Approvals: o.Approvals}
	}
	return v
}

func newPolicyCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check FILE|- [--json]",
		Short: "Validate a policy file and print the rules each task type resolves to",
		Long: "Validates FILE (or standard input) and prints every task type's rules after\n" +
			"defaults are applied. A bad file is reported as file:line:column: message and\n" +
			"exits 2.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, data, err := readArg(cmd, args[0])
			if err != nil {
				return usageError(fmt.Errorf("policy check: %w", err))
			}
			f, err := policy.Parse(name, data)
			if err != nil {
				if errors.Is(err, policy.ErrInvalid) {
					return usageError(err)
				}
				return usageError(fmt.Errorf("policy check: %w", err))
			}
			w := cmd.OutOrStdout()
			if asJSON {
				out := struct {
					File      string               `json:"file"`
					Valid     bool                 `json:"valid"`
					Version   int                  `json:"version"`
					TaskTypes map[string]rulesView `json:"task_types"`
				}{File: name, Valid: true, Version: f.Version, TaskTypes: map[string]rulesView{}}
				for _, t := range policy.TaskTypes {
					out.TaskTypes[t] = viewOf(f.Rules(t))
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(w, "%s: valid (version %d)\n", name, f.Version)
			for _, t := range policy.TaskTypes {
				printRules(w, t, f.Rules(t))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the resolved rules as JSON")
	return cmd
}

func printRules(w io.Writer, name string, p *policy.Policy) {
	fmt.Fprintf(w, "\n%s  (risk %s, min_confidence %.2f)\n", name, p.Risk, p.MinConfidence)
	for _, k := range []demur.Kind{demur.KindRefuse, demur.KindPartial, demur.KindDegraded} {
		as := make([]string, len(p.On[k]))
		for i, a := range p.On[k] {
			as[i] = string(a)
		}
		fmt.Fprintf(w, "  on %-9s %s\n", string(k)+":", strings.Join(as, " → "))
	}
	limit := func(n int) string {
		if n == 0 {
			return "none"
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(w, "  limits:      retire_after %s, max_attempts %d, max_job_refusals %s\n",
		limit(p.RetireAfter), p.MaxAttempts, limit(p.MaxJobRefusals))
	if e := p.EarlyWarning; e != nil && e.Action != demur.ActionAccept {
		fmt.Fprintf(w, "  early_warning: hazard ≥ %.2f → %s on the agent's next task\n", e.Hazard, e.Action)
	} else {
		fmt.Fprintf(w, "  early_warning: off\n")
	}
	if s := p.Storm; s != nil {
		fmt.Fprintf(w, "  storm:       refusal rate > %.2f over %d turns → %s\n", s.MaxRefusalRate, s.Window, s.Action)
	} else {
		fmt.Fprintf(w, "  storm:       off\n")
	}
	fmt.Fprintf(w, "  escalate:    wait %s, then %s\n", p.Escalate.Timeout, p.Escalate.Default)
	if p.Fallback != "" {
		fmt.Fprintf(w, "  fallback:    %s\n", p.Fallback)
	}
	acts := make([]string, 0, len(p.Overrides))
	for a := range p.Overrides {
		acts = append(acts, string(a))
	}
	sort.Strings(acts)
	parts := make([]string, len(acts))
	for i, a := range acts {
		o := p.Overrides[demur.Action(a)]
		parts[i] = fmt.Sprintf("%s %s×%d", a, o.Role, o.Approvals)
	}
	fmt.Fprintf(w, "  overrides:   %s\n", strings.Join(parts, ", "))
}

func newPolicyClassifyCmd() *cobra.Command {
	var asJSON bool
	var declared string
	cmd := &cobra.Command{
		Use:   "classify TEXT|- [--declared TYPE] [--json]",
		Short: "Classify a task's text into a task type, as the router does",
		Long: "Prints the classifier's task type, confidence (the margin between the two best\n" +
			"scores) and every type's score, the self-descriptions it ignored, and the type\n" +
			"whose policy the shipped policy file applies (stricter when unsure; a declared\n" +
			"type always wins). TEXT '-' reads standard input.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := args[0]
			if text == "-" {
				data, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return usageError(fmt.Errorf("policy classify: read stdin: %w", err))
				}
				text = string(data)
			}
			typ, conf, scores := policy.Classify(text)
			applied, path := policy.DefaultFile().Resolve(declared, text)
			claims := policy.Claims(text)
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					TaskType   string             `json:"task_type"`
					Confidence float64            `json:"confidence"`
					Scores     map[string]float64 `json:"scores"`
					Ignored    []string           `json:"ignored_claims,omitempty"`
					Applied    string             `json:"applied_policy"`
					Path       []demur.Step       `json:"path"`
				}{typ, conf, scores, claims, applied, path})
			}
			fmt.Fprintf(w, "task type:  %s\nconfidence: %.2f\nscores:\n", typ, conf)
			ranked := append([]string(nil), policy.TaskTypes...)
			sort.SliceStable(ranked, func(i, j int) bool { return scores[ranked[i]] > scores[ranked[j]] })
			for _, t := range ranked {
				fmt.Fprintf(w, "  %-20s %.3f\n", t, scores[t])
			}
			for _, c := range claims {
				fmt.Fprintf(w, "ignored self-description: %q\n", strings.TrimSpace(c))
			}
			fmt.Fprintf(w, "policy applied: %s\n", applied)
			for _, s := range path {
				mark := "-"
				if s.Matched {
					mark = "+"
				}
				fmt.Fprintf(w, "  %s %s: %s\n", mark, s.Rule, s.Why)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&declared, "declared", "", "the task type a job or request declares")
	return cmd
}

// readArg reads a file argument, or standard input for "-".
func readArg(cmd *cobra.Command, name string) (string, []byte, error) {
	if name == "-" {
		data, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return "-", nil, fmt.Errorf("read stdin: %w", err)
		}
		return "-", data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return name, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return name, data, nil
}
