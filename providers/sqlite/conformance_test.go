package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// openDriver opens rawURL and closes the driver when the test ends.
func openDriver(t testing.TB, rawURL string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := sqlite.Open(context.Background(), rawURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// newTestDriver opens a driver on a fresh database file of the test's own.
func newTestDriver(t testing.TB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	return openDriver(t, "file:"+filepath.Join(t.TempDir(), "wharf.db"), opts)
}

// newTestDB returns the pool of a fresh database file; its driver stays
// open until the test ends.
func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	return newTestDriver(t, wharf.Options{}).DB()
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewDB:        newTestDB,
		Capabilities: conformance.Capabilities{},
	})
}
