package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sanityPath = "../../refusal/testdata/sanity.jsonl"

func TestDetectorEvalJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := execute([]string{"detector", "eval", "--data", sanityPath, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		N         int                        `json:"n"`
		Accuracy  float64                    `json:"accuracy"`
		F1        float64                    `json:"f1"`
		MacroF1   float64                    `json:"macro_f1"`
		Classes   map[string]json.RawMessage `json:"classes"`
		Confusion [3][3]int                  `json:"confusion"`
		MBPerS    float64                    `json:"mb_per_s"`
		Baselines map[string]struct {
			Accuracy float64 `json:"accuracy"`
			F1       float64 `json:"f1"`
			MacroF1  float64 `json:"macro_f1"`
		} `json:"baselines"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	sum := 0
	for _, r := range rep.Confusion {
		for _, c := range r {
			sum += c
		}
	}
	if rep.N == 0 || sum != rep.N || len(rep.Classes) != 3 || rep.MBPerS <= 0 || rep.Accuracy <= 0 || rep.MacroF1 <= 0 {
		t.Errorf("report: %+v", rep)
	}
	for _, name := range []string{"xstest_prefix", "gcg_substring", "refusal_direction"} {
		b, ok := rep.Baselines[name]
		if !ok || b.Accuracy <= 0 {
			t.Errorf("baseline %s missing: %+v", name, rep.Baselines)
		}
	}
}

func TestDetectorEvalTable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := execute([]string{"detector", "eval", "--data", sanityPath}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"demur", "xstest_prefix", "gcg_substring", "refusal_direction", "macro-F1", "confusion", "MB/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDetectorEvalBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"response\":\"a\",\"label\":\"refusal\"}\n{\"response\":\"b\",\"label\":\"nope\"}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := execute([]string{"detector", "eval", "--data", bad}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "bad.jsonl:2") {
		t.Errorf("bad label: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := execute([]string{"detector", "eval"}, &out, &errb); code != exitUsage {
		t.Errorf("no --data: exit %d", code)
	}
	errb.Reset()
	if code := execute([]string{"detector", "eval", "--data", filepath.Join(dir, "none.jsonl")}, &out, &errb); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}

// TestDetectorTrain trains on a small file, with cross-validation, and checks
// that the weights file is written and that training is deterministic.
func TestDetectorTrain(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	refusals := []string{"I can't help with that.", "I won't do that.", "Sorry, I cannot assist.", "I must decline."}
	answers := []string{"Sure, here is the list.", "The capital is Paris.", "Mix flour and water.", "Use kill -9 PID."}
	for i := 0; i < 20; i++ {
		for j, r := range refusals {
			json.NewEncoder(&b).Encode(map[string]string{"prompt": string(rune('a' + i)), "response": r + strings.Repeat(" Really.", j+i%3), "label": "refusal"})
		}
		for j, a := range answers {
			json.NewEncoder(&b).Encode(map[string]string{"prompt": string(rune('a' + i)), "response": a + strings.Repeat(" Indeed.", j+i%3), "label": "compliance"})
		}
	}
	data := filepath.Join(dir, "train.jsonl")
	os.WriteFile(data, []byte(b.String()), 0o644)
	w1, w2 := filepath.Join(dir, "w1.bin"), filepath.Join(dir, "w2.bin")
	var out, errb bytes.Buffer
	if code := execute([]string{"detector", "train", "--data", data, "--out", w1, "--cv", "3", "--seed", "5"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "3-fold cross-validation") {
		t.Errorf("no CV report:\n%s", out.String())
	}
	if code := execute([]string{"detector", "train", "--data", data, "--out", w2, "--seed", "5"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	a, _ := os.ReadFile(w1)
	c, _ := os.ReadFile(w2)
	if len(a) == 0 || !bytes.Equal(a, c) {
		t.Errorf("weights differ between runs with one seed (%d vs %d bytes)", len(a), len(c))
	}
}
