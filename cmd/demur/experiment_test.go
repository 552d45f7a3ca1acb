package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/demurhq/demur/sim"
)

func runExperimentCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(append([]string{"experiment"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestExperimentOneProfileJSON(t *testing.T) {
	out, errs, code := runExperimentCLI(t, "--profile", "experimental-70b", "--agents", "800", "--seed", "3", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r experimentResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if r.Profile != "experimental-70b" || r.Agents != 800 || r.Seed != 3 {
		t.Errorf("header fields: %+v", r)
	}
	if !(r.RefusalRateCI[0] <= r.RefusalRate && r.RefusalRate <= r.RefusalRateCI[1]) || r.RefusalRate < 0.1 || r.RefusalRate > 0.4 {
		t.Errorf("refusal rate %g, CI %v", r.RefusalRate, r.RefusalRateCI)
	}
	if !(r.MeanAbandonmentCI[0] <= r.MeanAbandonmentTokens && r.MeanAbandonmentTokens <= r.MeanAbandonmentCI[1]) ||
		r.MeanAbandonmentTokens < 250_000 || r.MeanAbandonmentTokens > 550_000 {
		t.Errorf("mean abandonment %g, CI %v", r.MeanAbandonmentTokens, r.MeanAbandonmentCI)
	}
	// The raw JSON carries the field names the issue specifies.
	for _, k := range []string{`"profile"`, `"agents"`, `"refusal_rate"`, `"refusal_rate_ci"`, `"mean_abandonment_tokens"`, `"mean_abandonment_ci"`, `"seed"`, `"elapsed_s"`} {
		if !strings.Contains(out, k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	again, _, _ := runExperimentCLI(t, "--profile", "experimental-70b", "--agents", "800", "--seed", "3", "--json")
	var r2 experimentResult
	if err := json.Unmarshal([]byte(again), &r2); err != nil {
		t.Fatal(err)
	}
	if r2.RefusalRate != r.RefusalRate || r2.MeanAbandonmentTokens != r.MeanAbandonmentTokens {
		t.Error("same seed, different result")
	}
}

func TestExperimentAllProfiles(t *testing.T) {
	out, errs, code := runExperimentCLI(t, "--agents", "2000", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var all struct {
		Profiles []experimentResult `json:"profiles"`
		Seed     int64              `json:"seed"`
	}
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(all.Profiles) != 4 || all.Seed != defaultExperimentSeed {
		t.Fatalf("want 4 profiles and the default seed, got %d, %d", len(all.Profiles), all.Seed)
	}
	for i, p := range sim.Profiles() {
		if all.Profiles[i].Profile != p.Name || all.Profiles[i].Agents != 2000 {
			t.Errorf("profile %d: %+v", i, all.Profiles[i])
		}
	}
	table, _, code := runExperimentCLI(t, "--agents", "1000")
	if code != exitOK || !strings.Contains(table, "claude-3-opus-class") || !strings.Contains(table, "published") {
		t.Errorf("table (exit %d):\n%s", code, table)
	}
}

func TestExperimentUsageErrors(t *testing.T) {
	_, errs, code := runExperimentCLI(t, "--profile", "gpt-5")
	if code != exitUsage || !strings.Contains(errs, "llama-3-70b-class") {
		t.Errorf("unknown profile: exit %d, stderr %q", code, errs)
	}
	if _, _, code := runExperimentCLI(t, "--agents", "-5"); code != exitUsage {
		t.Errorf("negative agents: exit %d", code)
	}
	if _, _, code := runExperimentCLI(t, "extra"); code != exitUsage {
		t.Errorf("positional argument: exit %d", code)
	}
}

// TestExperimentDefaultsReproducePublished is the acceptance check through
// the command: at each profile's default agent count the published figures
// lie in the printed 95% intervals, and each half-width is at most 20% of
// the published figure.
func TestExperimentDefaultsReproducePublished(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every profile at its default size")
	}
	out, errs, code := runExperimentCLI(t, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var all struct {
		Profiles []experimentResult `json:"profiles"`
	}
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatal(err)
	}
	for _, r := range all.Profiles {
		for _, c := range []struct {
			what string
			x    float64
			ci   [2]float64
		}{
			{"refusal rate", r.PublishedRefusalRate, r.RefusalRateCI},
			{"mean abandonment", r.PublishedMeanAbandonment, r.MeanAbandonmentCI},
		} {
			if c.x < c.ci[0] || c.x > c.ci[1] {
				t.Errorf("%s %s: published %g outside [%g, %g]", r.Profile, c.what, c.x, c.ci[0], c.ci[1])
			}
			if hw := (c.ci[1] - c.ci[0]) / 2; hw > 0.2*c.x {
				t.Errorf("%s %s: half-width %g exceeds 20%% of %g", r.Profile, c.what, hw, c.x)
			}
		}
	}
}
