package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	demur "github.com/demurhq/demur"
	"github.com/demurhq/demur/refusal"
)

func init() { addCommand(newClassifyCmd) }

// classifyLine is one JSONL input line: a response plus the optional
// provider fields the detector reads.
type classifyLine struct {
	ID              string  `json:"id"`
	Response        *string `json:"response"`
	FinishReason    string  `json:"finish_reason"`
	ProviderRefusal string  `json:"provider_refusal"`
	StopCategory    string  `json:"stop_category"`
	StopExplanation string  `json:"stop_explanation"`
}

// classifyOut is one JSON verdict; id is the input line's id (or its line
// number) so that outputs can be joined back to inputs.
type classifyOut struct {
	ID   string `json:"id,omitempty"`
	Line int    `json:"line,omitempty"`
	demur.Verdict
}

func newClassifyCmd() *cobra.Command {
	var asJSON, explain bool
	cmd := &cobra.Command{
		Use:   "classify [FILE|-] [--json] [--explain]",
		Short: "Classify a response (plain text) or responses (JSONL with a response field)",
		Long: "Reads FILE (or standard input). Input whose first non-blank byte is '{' is JSONL,\n" +
			"one object a line with a \"response\" field (and optionally finish_reason,\n" +
			"provider_refusal, stop_category, stop_explanation); anything else is one plain-text\n" +
			"response. With --json, prints one JSON verdict per response.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "-"
			if len(args) == 1 {
				name = args[0]
			}
			var r io.Reader = cmd.InOrStdin()
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return usageError(fmt.Errorf("classify: %w", err))
				}
				defer f.Close()
				r = f
			}
			data, err := io.ReadAll(r)
			if err != nil {
				return usageError(fmt.Errorf("classify: read %s: %w", name, err))
			}
			d := refusal.New()
			w := cmd.OutOrStdout()
			if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
				return classifyJSONL(d, data, name, w, asJSON, explain)
			}
			text := string(data)
			v := d.Classify(&demur.Turn{Response: demur.Response{Output: text}})
			return printVerdict(w, classifyOut{Verdict: v}, text, asJSON, explain)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON verdicts")
	cmd.Flags().BoolVar(&explain, "explain", false, "show the evidence behind each verdict")
	return cmd
}

func classifyJSONL(d *refusal.Detector, data []byte, name string, w io.Writer, asJSON, explain bool) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var in classifyLine
		if err := json.Unmarshal(b, &in); err != nil {
			return usageError(fmt.Errorf("%s:%d: %w", name, line, err))
		}
		if in.Response == nil {
			return usageError(fmt.Errorf("%s:%d: no \"response\" field", name, line))
		}
		t := &demur.Turn{Response: demur.Response{Output: *in.Response, FinishReason: in.FinishReason,
			ProviderRefusal: in.ProviderRefusal, StopCategory: in.StopCategory, StopExplanation: in.StopExplanation}}
		out := classifyOut{ID: in.ID, Line: line, Verdict: d.Classify(t)}
		if err := printVerdict(w, out, *in.Response, asJSON, explain); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return usageError(fmt.Errorf("%s:%d: %w", name, line+1, err))
	}
	return nil
}

func printVerdict(w io.Writer, o classifyOut, text string, asJSON, explain bool) error {
	if asJSON {
		if !explain {
			o.Evidence = nil
		}
		b, err := json.Marshal(o)
		if err != nil {
			return problemError(fmt.Errorf("classify: encode verdict: %w", err))
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	v := o.Verdict
	prefix := ""
	if o.Line > 0 {
		prefix = fmt.Sprintf("%d: ", o.Line)
		if o.ID != "" {
			prefix = o.ID + ": "
		}
	}
	reasons := make([]string, len(v.Reasons))
	for i, r := range v.Reasons {
		reasons[i] = string(r)
	}
	fmt.Fprintf(w, "%s%s %.2f source=%s", prefix, v.Kind, v.Confidence, v.Source)
	if len(reasons) > 0 {
		fmt.Fprintf(w, " reasons=%s", strings.Join(reasons, ","))
	}
	fmt.Fprintln(w)
	if explain {
		s := v.Signals
		fmt.Fprintf(w, "  signals: repetition=%.2f meta_ratio=%.2f\n", s.Repetition, s.MetaRatio)
		for _, e := range v.Evidence {
			quote := ""
			if e.End > e.Start && e.End <= len(text) {
				quote = fmt.Sprintf(" %q", text[e.Start:e.End])
			}
			fmt.Fprintf(w, "  [%d,%d) %s", e.Start, e.End, e.Rule)
			if e.Reason != "" {
				fmt.Fprintf(w, " → %s", e.Reason)
			}
			fmt.Fprintf(w, "%s\n", quote)
		}
	}
	return nil
}
