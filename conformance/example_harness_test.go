package conformance_test

import (
	"testing"

	"github.com/wharf-go/wharf/conformance"
)

// TestConformanceOfAnApplicationsWiring runs the whole suite on the
// application wiring of Example_customDriver (appHarness: the
// application's own SQLite pool, query hook and driver options), so the
// example's harness is known to work.
func TestConformanceOfAnApplicationsWiring(t *testing.T) {
	conformance.Run(t, appHarness())
}
