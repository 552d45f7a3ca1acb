package policy

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// BenchmarkResolve is the proxy's per-request task-type classification of
// an undeclared request: a short prompt, a long one, and one the size of
// an agent's (labelled prompts of every type run together, 8 KB).
func BenchmarkResolve(b *testing.B) {
	f := DefaultFile()
	for _, tc := range []struct{ name, text string }{
		{"short", "Write about reservoirs in about 150 words."},
		{"long", "Section 3.2: Write the next section of the report on municipal water systems. Cover the reservoirs, the treatment plants and the pipes that carry water to homes; explain how engineers plan for droughts, what the costs are ($4.2M a year for a town of 50k) and how the public is kept informed. Previous section summary: the history of the town's wells and the first dam, built in 1911."},
		{"8KB", agentPrompt(b, 8<<10)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.text)))
			for b.Loop() {
				f.Resolve("", tc.text)
			}
		})
	}
}

// agentPrompt joins labelled prompts, in file order, up to n bytes.
func agentPrompt(b *testing.B, n int) string {
	fh, err := os.Open("testdata/tasktypes.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(fh)
	for sc.Scan() && sb.Len() < n {
		var r labelled
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			b.Fatal(err)
		}
		sb.WriteString(r.Text)
		sb.WriteString("\n\n")
	}
	return sb.String()[:n]
}
