package feed

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
)

// TestEventsOutliveReadTimeout: a server's ReadTimeout (web.NewServer sets
// one against slow clients) must not cut an event stream, whose request was
// read long ago.
func TestEventsOutliveReadTimeout(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	appendRec(t, st, "j", demur.RecJobStart, demur.JobStartPayload{Agents: []demur.AgentEntry{{ID: "a"}}})
	f, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.Handler(), ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(600 * time.Millisecond) // three read timeouts
	refuseTurn(t, st, "j", "a", "s1")
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended")
			}
			if strings.HasPrefix(l, "event: update") {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no update")
		}
	}
}
