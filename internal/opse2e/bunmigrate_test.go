package opse2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/migrate"

	"github.com/wharf-go/wharf"
)

// TestBunMigrate runs wharf's migrations through bun/migrate both ways
// docs/operations.md shows: a Go migration that calls Migrate, and the
// SQL files of `wharf migrate sql --format bun`.
func TestBunMigrate(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		t.Run("GoMigrationCallsMigrate", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			drv := openDriver(t, d, d.newDB(t), wharf.Options{})
			ms := migrate.NewMigrations()
			ms.Add(migrate.Migration{Name: "20250101000000", Comment: "wharf",
				Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
					// What the documented migration does with the *bun.DB
					// bun/migrate hands it.
					drv, err := wharf.NewDriver(m.DB(), wharf.Options{})
					if err != nil {
						return err
					}
					defer drv.Close()
					return drv.Migrate(ctx)
				}})
			migrator := migrate.NewMigrator(drv.DB(), ms)
			require.NoError(t, migrator.Init(ctx))
			group, err := migrator.Migrate(ctx)
			require.NoError(t, err)
			require.Len(t, group.Migrations, 1)
			requireUsable(t, drv)
		})
		t.Run("ExportedSQLFiles", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			files, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id, Format: wharf.FormatBun, FirstVersion: 20250101000000})
			require.NoError(t, err)
			dir := t.TempDir()
			for _, f := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644))
			}
			drv := openDriver(t, d, d.newDB(t), wharf.Options{})
			ms := migrate.NewMigrations()
			require.NoError(t, ms.Discover(os.DirFS(dir)))
			migrator := migrate.NewMigrator(drv.DB(), ms)
			require.NoError(t, migrator.Init(ctx))
			group, err := migrator.Migrate(ctx)
			require.NoError(t, err)
			require.Len(t, group.Migrations, len(files), "bun ran every file")
			requireUsable(t, drv)
		})
	})
}
