package postgres_test

import (
	"testing"

	"github.com/wharf-go/wharf/conformance"
)

// TestConformance gives every conformance test a fresh schema of its own on
// the server of WHARF_TEST_POSTGRES_URL, reached through search_path.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewDB:        newTestDB,
		Capabilities: conformance.Capabilities{RemoteNotifications: true},
	})
}
