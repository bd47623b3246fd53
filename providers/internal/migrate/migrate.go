// Package migrate runs setup statements for every provider.
package migrate

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Run executes the statements of each set in order; the first failure stops
// it with an error naming the dialect and the statement's position.
func Run(ctx context.Context, db bun.IDB, dialect string, sets ...func() ([]string, error)) error {
	for _, set := range sets {
		stmts, err := set()
		if err != nil {
			return fmt.Errorf("%s migrate: %w", dialect, err)
		}
		for i, s := range stmts {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s migrate: statement %d of %d: %w", dialect, i+1, len(stmts), err)
			}
		}
	}
	return nil
}
