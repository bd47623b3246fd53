package wharf

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/internal/idemsql"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
)

// The public constants are literals, so that go doc shows their values;
// the internal packages that act on them keep their own copies.
func TestPublicConstantsMatchTheInternalOnes(t *testing.T) {
	t.Parallel()
	require.Equal(t, outboxsql.CursorWindow, ClaimWindow)
	require.Equal(t, outboxsql.FullScanInterval, ClaimRescanInterval)
	require.Equal(t, idemsql.DefaultPurgeBatch, DefaultPurgeBatch)
	require.Equal(t, outboxsql.DefaultPurgeBatch, DefaultPurgeBatch)
	require.Equal(t, migrations.DefaultVersionTable, DefaultMigrationsTable)
}
