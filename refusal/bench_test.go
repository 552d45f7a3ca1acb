package refusal

import (
	"regexp"
	"strings"
	"testing"
)

// typical is a mix of response shapes and lengths, as chat models write
// them: a long markdown answer with code, a short refusal, a partial, and a
// medium prose answer.
var typical = []string{
	"Killing a process on Linux is usually a two-step job: find the process ID (PID), then send it a signal.\n\n" +
		"## 1. Find the PID\n\n```bash\nps aux | grep python\npgrep -f my_script.py\n```\n\n" +
		"`ps aux` lists every process with its owner, CPU and memory use; `pgrep -f` matches against the full command line, " +
		"which helps when several Python programs are running.\n\n## 2. Send a signal\n\n```bash\nkill 12345      # SIGTERM: ask politely\n" +
		"kill -9 12345   # SIGKILL: cannot be caught or ignored\npkill -f my_script.py\n```\n\n" +
		"Start with SIGTERM, because it lets the program close files, flush buffers and remove temporary data. " +
		"Use SIGKILL only if the process does not exit after a few seconds, since it skips all clean-up.\n\n" +
		"## Common pitfalls\n\n- **Permission denied**: the process belongs to another user; prefix the command with `sudo`.\n" +
		"- **Zombie processes** show as `<defunct>` and cannot be killed; their parent must reap them, or you kill the parent.\n" +
		"- **Restarting services**: if a supervisor such as systemd restarts the program, stop it with `systemctl stop name` instead.\n\n" +
		"On macOS the same commands work, and on Windows the equivalent is `taskkill /PID 12345 /F` or Task Manager's End task button. " +
		"If you find yourself killing the same program often, consider adding a signal handler so that it shuts down cleanly on SIGTERM.",
	"I'm sorry, but I can't help with that request. If you have any other questions, feel free to ask.",
	"I can't help you access someone else's account. However, if you're locked out of your own email, " +
		"here's how to recover it:\n\n1. Go to the sign-in page and choose \"Forgot password\".\n2. Verify with your " +
		"recovery phone number.\n3. Turn on two-factor authentication once you're back in.",
	"The harbour town grew rich on the salt trade in the fourteenth century. Merchants from the river cities brought grain " +
		"and timber down to the coast, and the council taxed every barrel that crossed the bridge. With the revenue it built " +
		"a stone quay, a granary and, eventually, the lighthouse that still stands on the northern mole. The guilds kept " +
		"careful ledgers, and their archive, which survived two fires and a flood, is the main source for the town's economic " +
		"history. It shows a steady rise in prosperity until the plague of 1348 halved the population within a single summer. " +
		"Recovery was slow: the census of 1400 counted fewer households than that of 1300, and several streets near the " +
		"market were abandoned and turned into orchards. Yet the trade routes survived, and by the end of the century the " +
		"town's ships were again carrying salt as far as the Baltic, where it was prized for preserving herring.",
}

func typicalBytes() int64 {
	n := 0
	for _, s := range typical {
		n += len(s)
	}
	return int64(n)
}

// BenchmarkClassify measures the full verdict (text layer, learned layer,
// reasons, evidence) on typical responses.
//
//	go test -run '^$' -bench Classify -benchmem ./refusal/
//
// On a shared machine wall-clock MB/s understates a core's speed, so the
// benchmark also reports cpu-MB/s: bytes over the process's CPU time
// (user+system, GC included).
func BenchmarkClassify(b *testing.B) {
	d := New()
	b.SetBytes(typicalBytes())
	b.ReportAllocs()
	c0 := cpuTime()
	n := 0
	for b.Loop() {
		for _, s := range typical {
			d.ClassifyText(s)
		}
		n++
	}
	if cpu := cpuTime() - c0; cpu > 0 {
		b.ReportMetric(float64(n)*float64(typicalBytes())/1e6/cpu, "cpu-MB/s")
	}
}

// BenchmarkClassifyParallel checks that concurrent use scales (pooled
// scratch, no shared writes).
func BenchmarkClassifyParallel(b *testing.B) {
	d := New()
	b.SetBytes(typicalBytes())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for _, s := range typical {
				d.ClassifyText(s)
			}
		}
	})
}

// BenchmarkRegexpAlternation is the comparison the issue asks for: one Go
// regexp alternation of the same lexicon, which only finds the phrases and
// computes none of the verdict.
func BenchmarkRegexpAlternation(b *testing.B) {
	var alts []string
	for _, p := range patterns {
		alts = append(alts, regexp.QuoteMeta(p.text))
	}
	re := regexp.MustCompile(`(?i)\b(?:` + strings.Join(alts, "|") + `)`)
	b.SetBytes(typicalBytes())
	for b.Loop() {
		for _, s := range typical {
			re.FindAllStringIndex(s, -1)
		}
	}
}

// TestComplyAllocFree pins the hot path: classifying ordinary compliant
// text allocates nothing once the scratch pool is warm.
func TestComplyAllocFree(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	d := New()
	for _, s := range []string{typical[0], typical[3]} {
		d.ClassifyText(s)
		if n := testing.AllocsPerRun(50, func() { d.ClassifyText(s) }); n > 0 {
			t.Errorf("%d allocations classifying a compliant answer of %d bytes", int(n), len(s))
		}
	}
}
