package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver: polls the log while a run writes it

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/storeurl"
)

// crashSpec is sized so that one uninterrupted run takes two to three
// seconds on the simulator: long enough for 24 kills, each 5-60 ms into a
// run's appends, to land mid-job.
const crashSpec = `name: crash
seed: 7
document:
  title: A Crash Atlas
  chapters: 12
  sections_per_chapter: 10
  words_per_section: 3000
agents:
  - {count: 2, backend: sim, profile: gpt-4-class}
  - {count: 1, backend: sim, profile: experimental-70b}
policy: {retire_after: 3, max_attempts: 32, min_confidence: 0.5}
`

const (
	minKills      = 24
	crashSections = 120
)

// TestCrashResume SIGKILLs a real `demur run` at random moments, at least
// minKills times, restarting it each time until it finishes. Each job must
// resume from its log: every section exactly once, in order, each identical
// to the body the log accepted for it, no section accepted twice, and the
// log, its checkpoints and its witness must verify. Should a job finish
// before minKills kills (a fast machine), another job takes the rest.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a real job 20+ times; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "crash.yaml")
	if err := os.WriteFile(spec, []byte(crashSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DEMUR_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("kill schedule seed %d (DEMUR_CRASH_SEED reproduces it)", seed)
	c := &crasher{t: t, bin: bin, spec: spec, rng: rand.New(rand.NewPCG(seed, 0xdead))}
	start := time.Now()
	jobs := 0
	for jobs == 0 || c.kills < minKills {
		jobs++
		out := filepath.Join(dir, fmt.Sprintf("out-%d", jobs))
		final := c.runToEnd(out)
		checkCrashedJob(t, bin, out, final)
	}
	t.Logf("%d SIGKILLs (%d after the log had grown in that run), %d runs, %d job(s) completed and checked, %v",
		c.kills, c.midJob, c.runs, jobs, time.Since(start).Round(time.Millisecond))
	if c.midJob < minKills/3 {
		t.Errorf("only %d of %d kills landed after the job had made progress", c.midJob, c.kills)
	}
}

// crasher starts and kills runs of one spec.
type crasher struct {
	t                   *testing.T
	bin, spec           string
	rng                 *rand.Rand
	kills, midJob, runs int
}

// runToEnd runs the job in out until a run exits, killing each run while
// fewer than minKills kills have been made, and returns the final run's
// standard output.
func (c *crasher) runToEnd(out string) []byte {
	t := c.t
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	db := openPoller(t, filepath.Join(out, "demur.db"))
	var head int64
	for {
		c.runs++
		if c.runs > 300 {
			t.Fatalf("no completion after %d runs", c.runs)
		}
		cmd := exec.Command(c.bin, "run", c.spec, "--out", out, "--json")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		finished := func(err error) []byte {
			if err != nil {
				t.Fatalf("run %d: %v\nstderr: %s", c.runs, err, stderr.String())
			}
			return stdout.Bytes()
		}
		if c.kills >= minKills {
			return finished(<-done)
		}
		// Most kills wait until this run has appended (past start-up), then
		// 5-60 ms more; one in four lands anywhere, start-up included.
		delay := time.Duration(5+c.rng.IntN(56)) * time.Millisecond
		if c.rng.IntN(4) > 0 {
			waitForGrowth(t, db, head, done)
		}
		select {
		case err := <-done:
			return finished(err) // the job ended before this kill
		case <-time.After(delay):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		err := <-done
		if err == nil {
			return finished(nil) // it exited on its own just before the signal
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: %v, want killed by SIGKILL\nstderr: %s", c.runs, err, stderr.String())
		}
		c.kills++
		if h := headOf(t, db); h > head {
			c.midJob++ // the log grew during this run: the kill landed mid-job
			head = h
		}
	}
}

// checkCrashedJob checks a job's final output, document and log.
func checkCrashedJob(t *testing.T, bin, out string, final []byte) {
	t.Helper()
	storeURL := "sqlite://" + filepath.Join(out, "demur.db")
	var sum runSummary
	if err := json.Unmarshal(final, &sum); err != nil {
		t.Fatalf("final --json output: %v\n%s", err, final)
	}
	if sum.Status != "completed" || sum.SectionsDone != crashSections {
		t.Fatalf("final run: %s, %d of %d sections", sum.Status, sum.SectionsDone, sum.SectionsTotal)
	}
	checkDocument(t, sum.Document, crashSections)
	checkAcceptedBodies(t, storeURL, "crash-7", sum.Document)

	vcmd := exec.Command(bin, "audit", "verify", "--store", storeURL, "--json")
	var vout, verr bytes.Buffer
	vcmd.Stdout, vcmd.Stderr = &vout, &verr
	if err := vcmd.Run(); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, vout.String(), verr.String())
	}
	var v verifyOut
	if err := json.Unmarshal(vout.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Signatures < 2 || v.Anchors != 1 || v.Unattested != 1 {
		t.Fatalf("verify: %s", vout.String())
	}
}

// openPoller opens the job's SQLite file for polling while a run writes it;
// a store Open would take the write lock to migrate. It is not read-only:
// the first reader after a SIGKILL must recover the WAL index, which a
// read-only connection cannot do.
func openPoller(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func headOf(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var h sql.NullInt64
	if err := db.QueryRow("SELECT max(seq) FROM records").Scan(&h); err != nil && !isNoTable(err) {
		t.Fatal(err)
	}
	return h.Int64
}

// isNoTable: the first run may not have created the schema yet.
func isNoTable(err error) bool {
	return strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "unable to open")
}

// waitForGrowth polls until the log is past head, or the run ends.
func waitForGrowth(t *testing.T, db *sql.DB, head int64, done chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for headOf(t, db) <= head && time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err // let the caller see it
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

var sectionHead = regexp.MustCompile(`(?m)^### (\d+)\.(\d+) .*\n\n`)

// checkAcceptedBodies compares each section of the document with the
// bodies the log accepted for it, and requires at most one section.done
// per task.
func checkAcceptedBodies(t *testing.T, url, job, docPath string) {
	t.Helper()
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Stream: job, Kinds: []demur.RecordKind{demur.RecSection}})
	if err != nil {
		t.Fatal(err)
	}
	byTask := map[string]bool{}
	byIndex := map[int][]demur.SectionPayload{}
	for _, r := range recs {
		var p demur.SectionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if byTask[p.Task] {
			t.Errorf("section %s accepted twice (second at seq %d)", p.Task, r.Seq)
		}
		byTask[p.Task] = true
		byIndex[p.Index] = append(byIndex[p.Index], p)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	locs := sectionHead.FindAllSubmatchIndex(doc, -1)
	if len(locs) != len(byIndex) {
		t.Fatalf("document has %d sections, the log accepted %d", len(locs), len(byIndex))
	}
	chapter := regexp.MustCompile(`\n## Chapter \d+: [^\n]*\n\n\z`)
	for i, loc := range locs {
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		got := chapter.ReplaceAll(doc[loc[1]:end], []byte("\n")) // the next chapter's heading, if any
		ss := byIndex[i]
		sort.Slice(ss, func(a, b int) bool { return ss[a].Part < ss[b].Part })
		if ss[0].Part == 0 {
			ss = ss[:1]
		}
		var want []byte
		for _, s := range ss {
			body, err := st.Blob(ctx, s.Output)
			if err != nil {
				t.Fatal(err)
			}
			want = append(append(want, body...), '\n')
		}
		if i+1 < len(locs) {
			want = append(want, '\n') // the blank line before the next heading
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("section %d (%s) differs from the accepted body: %d bytes in the document, %d accepted",
				i, fmt.Sprint(ss[0].Task), len(got), len(want))
		}
	}
}
