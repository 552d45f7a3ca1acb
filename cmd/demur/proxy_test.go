package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/storeurl"
)

func TestProxyBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--mode", "obey"},
		{"proxy", "--route", "nameless"},
		{"proxy", "--max-body", "lots"},
		{"proxy", "--chaos-refusal-rate", "0.5", "--chaos-refusals", "http_429"},
		{"proxy", "--store", "ftp://x"},
		{"proxy", "--api-key-env", "DEMUR_TEST_UNSET_VARIABLE_XYZ"},
		{"proxy", "extra-arg"},
	} {
		var stdout, stderr bytes.Buffer
		if code := execute(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %s)", args, code, exitUsage, stderr.String())
		}
	}
}

// proxyOutput lets the test read output the server goroutine writes.
type proxyOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *proxyOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *proxyOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProxyCommand(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
		return fakeupstream.Reply{Text: "Aqueducts carried water across valleys on arches of stone."}
	})
	defer up.Close()
	const configured = "sk-configured-UPSTREAM-KEY-77"
	t.Setenv("DEMUR_TEST_PROXY_KEY", configured)
	storeURL := "sqlite://" + filepath.Join(t.TempDir(), "p", "demur.db")
	ctx, cancel := context.WithCancel(context.Background())
	o := proxyOptions{listen: "127.0.0.1:0", upstream: up.URL + "/v1", store: storeURL, mode: "observe", maxBody: "1MiB",
		maxRetries: 2, keyEnv: "DEMUR_TEST_PROXY_KEY", json: true, job: "cli-test"}
	addr, done, stdout, stderr := startProxyCmd(ctx, t, o)
	c := oai.NewClient(option.WithBaseURL("http://"+addr+"/v1/"), option.WithAPIKey("sk-client-key-should-be-replaced"), option.WithMaxRetries(0))
	cc, err := c.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{Model: "m", Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("Aqueducts?")}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.Choices[0].Message.Content, "Aqueducts carried") {
		t.Fatalf("got %q", cc.Choices[0].Message.Content)
	}
	if got := up.Requests()[0].Header.Get("Authorization"); got != "Bearer "+configured {
		t.Errorf("upstream saw %q, want the configured key", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q", stdout.String())
	}
	var st proxyStatus
	if err := json.Unmarshal([]byte(lines[1]), &st); err != nil || st.Event != "stopped" || st.Job != "cli-test" {
		t.Fatalf("stopped line %q: %v", lines[1], err)
	}
	if strings.Contains(stdout.String()+stderr.String(), configured) {
		t.Fatal("the configured key reached the output")
	}
	s, err := storeurl.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Records(context.Background(), demur.Query{Job: "cli-test"})
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records: %v", len(recs), err)
	}
	for _, r := range recs {
		if bytes.Contains(r.Payload, []byte(configured)) || bytes.Contains(r.Payload, []byte("sk-client-key")) {
			t.Fatalf("a key is in a %s record", r.Kind)
		}
	}
}

// startProxyCmd runs `demur proxy` with o in-process and returns its
// address once it listens, with the channel its exit arrives on and its
// output.
func startProxyCmd(ctx context.Context, t *testing.T, o proxyOptions) (addr string, done <-chan error, stdout, stderr *proxyOutput) {
	t.Helper()
	ready, exit := make(chan string, 1), make(chan error, 1)
	o.ready = func(a string) { ready <- a }
	stdout, stderr = &proxyOutput{}, &proxyOutput{}
	go func() { exit <- runProxy(ctx, o, stdout, stderr) }()
	select {
	case addr = <-ready:
	case err := <-exit:
		t.Fatalf("proxy exited: %v", err)
	}
	return addr, exit, stdout, stderr
}
