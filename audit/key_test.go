package audit_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/demurhq/demur/audit"
)

type ed25519PublicKey = ed25519.PublicKey

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	keys := make([]ed25519.PrivateKey, 4)
	var wg sync.WaitGroup
	for i := range keys { // racing first uses agree on one key
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := audit.LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("concurrent first uses created different keys")
		}
	}
	priv := filepath.Join(dir, audit.PrivateKeyFile)
	fi, err := os.Stat(priv)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %04o, want 0600", fi.Mode().Perm())
	}
	pub, err := audit.LoadPublicKey(filepath.Join(dir, audit.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(keys[0].Public()) {
		t.Fatal("the .pub file does not hold the key's public half")
	}
	again, err := audit.LoadOrCreateKey(dir)
	if err != nil || !again.Equal(keys[0]) {
		t.Fatalf("second use: %v, same key %v", err, again.Equal(keys[0]))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("key dir holds %d files, want 2 (no temporaries left)", len(ents))
	}
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("world-readable key: %v, want a permissions error", err)
	}
}

func TestCheckpointSignature(t *testing.T) {
	c := &audit.Checkpoint{Stream: "s", Seq: 2, Head: strings.Repeat("a", 64), Count: 2, From: 1, Hashes: strings.Repeat("b", 32)}
	c.Sign(testKey(1))
	pub := testKey(1).Public().(ed25519.PublicKey)
	if err := c.CheckSignature(pub); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignature(testKey(2).Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("other key: %v", err)
	}
	c.Count = 3
	if err := c.CheckSignature(pub); err == nil {
		t.Fatal("a changed count still verifies")
	}
}
