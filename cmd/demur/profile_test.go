package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfileFlag: any command takes --cpuprofile and leaves a profile
// pprof can read; a path that cannot be created is bad usage.
func TestCPUProfileFlag(t *testing.T) {
	in := writeTemp(t, "r.txt", "I'm sorry, but I can't help with that.\n")
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	var out, errb bytes.Buffer
	if code := execute([]string{"--cpuprofile", prof, "classify", in}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// A pprof profile is a gzipped protocol buffer.
	zr, err := gzip.NewReader(bytes.NewReader(mustRead(t, prof)))
	if err != nil {
		t.Fatalf("the profile is not gzipped: %v", err)
	}
	if body, err := io.ReadAll(zr); err != nil || len(body) == 0 {
		t.Fatalf("the profile's body: %d bytes, %v", len(body), err)
	}
	if code := execute([]string{"--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof"), "classify", in}, &out, &errb); code != exitUsage {
		t.Fatalf("unwritable profile path: exit %d, want %d", code, exitUsage)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
