package audit_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/storetest"
)

// TestLogConformance runs the store suite against a Log over SQLite: the
// Log is a demur.Store, and wrapping must not change what one promises.
// The interval is beyond the suite's stream lengths, so no checkpoint
// record changes the counts it expects.
func TestLogConformance(t *testing.T) {
	path := storetest.PerTest(func(t *testing.T) string { return filepath.Join(t.TempDir(), "audit.db") })
	storetest.Run(t, func(t *testing.T) demur.Store {
		st, err := sqlite.Open(context.Background(), path(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return audit.NewLog(st, testKey(1), 1<<30)
	})
}
