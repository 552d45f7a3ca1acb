package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/storetest"
)

const crashEnv = "DEMUR_SQLITE_CRASH_CHILD"

// TestCrashChild is the child half of TestKilledWriter: it appends until
// killed, printing each record once Append has returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestKilledWriter")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := &demur.Record{Stream: fmt.Sprint("s", g%2), Payload: fmt.Appendf(nil, "%d.%d", g, i)}
				if err := s.Append(ctx, r); err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("ok %s %d %s\n", r.Stream, r.Seq, r.Payload)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKilledWriter kills a process in the middle of appending and checks
// that the file holds every record whose Append returned, with whole
// chains, and that a new writer continues them.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "demur.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{} // "stream/seq" -> payload
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "error" {
			t.Fatalf("child: %s", sc.Text())
		}
		if len(f) == 4 && f[0] == "ok" {
			acked[f[1]+"/"+f[2]] = f[3]
		}
		if len(acked) >= 300 || time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no Close, no checkpoint
	// Acknowledgements already in the pipe still count.
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "ok" {
			acked[f[1]+"/"+f[2]] = f[3]
		}
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d appends", len(acked))
	}

	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, st := range []string{"s0", "s1"} {
		r := &demur.Record{Stream: st, Payload: []byte("after")}
		if err := s.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs, err := s.Records(ctx, demur.Query{Stream: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := storetest.VerifyStream(recs); err != nil {
			t.Fatalf("stream %s after crash: %v", st, err)
		}
		if last := recs[len(recs)-1]; string(last.Payload) != "after" {
			t.Fatalf("stream %s: new record is not last", st)
		}
		for _, r := range recs {
			key := st + "/" + strconv.FormatInt(r.Seq, 10)
			if p, ok := acked[key]; ok && p != string(r.Payload) {
				t.Fatalf("%s holds %q, child acknowledged %q", key, r.Payload, p)
			}
			delete(acked, key)
		}
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged records lost, e.g. %v", len(acked), firstKey(acked))
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}
