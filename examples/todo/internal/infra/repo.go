package infra

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/examples/todo/internal/domain"
)

// Table names.
const (
	// TodosTable holds the todos.
	TodosTable = "todos"
	// ActivityTable holds the activity feed, one row per delivered event.
	ActivityTable = "todo_activity"
)

// todoRow is the todos table. Timestamps are core.TimeFormat text, like
// every wharf timestamp; completed_at is NULL while the todo is open.
type todoRow struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk"`
	Title         string `bun:"title"`
	CompletedAt   string `bun:"completed_at,nullzero"`
	CreatedAt     string `bun:"created_at"`
	UpdatedAt     string `bun:"updated_at"`
}

func toTodoRow(t domain.Todo) *todoRow {
	r := &todoRow{ID: t.ID, Title: t.Title, CreatedAt: core.FormatTime(t.CreatedAt), UpdatedAt: core.FormatTime(t.UpdatedAt)}
	if t.Completed() {
		r.CompletedAt = core.FormatTime(t.CompletedAt)
	}
	return r
}

func (r *todoRow) todo() (domain.Todo, error) {
	t := domain.Todo{ID: r.ID, Title: r.Title}
	var err error
	if t.CreatedAt, err = core.ParseTime(r.CreatedAt); err != nil {
		return t, fmt.Errorf("todo %s: created_at: %w", r.ID, err)
	}
	if t.UpdatedAt, err = core.ParseTime(r.UpdatedAt); err != nil {
		return t, fmt.Errorf("todo %s: updated_at: %w", r.ID, err)
	}
	if r.CompletedAt != "" {
		if t.CompletedAt, err = core.ParseTime(r.CompletedAt); err != nil {
			return t, fmt.Errorf("todo %s: completed_at: %w", r.ID, err)
		}
	}
	return t, nil
}

// TodoRepository implements domain.TodoRepository with bun. It works on a
// bun.IDB, so the same code runs on the root database (reads) and inside a
// transaction (the unit of work builds one per transaction).
type TodoRepository struct {
	db bun.IDB
}

// NewTodoRepository returns a repository on db (a *bun.DB or a bun.Tx).
func NewTodoRepository(db bun.IDB) *TodoRepository { return &TodoRepository{db: db} }

// Add implements domain.TodoRepository.
func (r *TodoRepository) Add(ctx context.Context, t domain.Todo) error {
	if _, err := r.db.NewInsert().Model(toTodoRow(t)).Exec(ctx); err != nil {
		return fmt.Errorf("insert todo %s: %w", t.ID, err)
	}
	return nil
}

// Get implements domain.TodoRepository.
func (r *TodoRepository) Get(ctx context.Context, id string) (domain.Todo, error) {
	return r.get(ctx, id, false)
}

// GetForUpdate implements domain.TodoRepository with SELECT ... FOR UPDATE
// (SQLite has no row locks and needs none: its write transactions run one
// at a time).
func (r *TodoRepository) GetForUpdate(ctx context.Context, id string) (domain.Todo, error) {
	return r.get(ctx, id, true)
}

func (r *TodoRepository) get(ctx context.Context, id string, lock bool) (domain.Todo, error) {
	row := new(todoRow)
	q := r.db.NewSelect().Model(row).Where("id = ?", id)
	if lock && r.db.Dialect().Name().String() != "sqlite" {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Todo{}, fmt.Errorf("todo %s: %w", id, domain.ErrNotFound)
		}
		return domain.Todo{}, fmt.Errorf("select todo %s: %w", id, err)
	}
	return row.todo()
}

// Update implements domain.TodoRepository.
func (r *TodoRepository) Update(ctx context.Context, t domain.Todo) error {
	if _, err := r.db.NewUpdate().Model(toTodoRow(t)).Column("title", "completed_at", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("update todo %s: %w", t.ID, err)
	}
	return nil
}

// Remove implements domain.TodoRepository.
func (r *TodoRepository) Remove(ctx context.Context, id string) error {
	res, err := r.db.NewDelete().Model((*todoRow)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete todo %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete todo %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("todo %s: %w", id, domain.ErrNotFound)
	}
	return nil
}

// List implements domain.TodoRepository: keyset pagination on the
// (created_at, id) index.
func (r *TodoRepository) List(ctx context.Context, req domain.PageRequest) ([]domain.Todo, error) {
	var rows []todoRow
	q := r.db.NewSelect().Model(&rows).OrderExpr("created_at DESC, id DESC").Limit(int64(req.Limit))
	if req.After != nil {
		at := core.FormatTime(req.After.At)
		q = q.Where("(created_at < ? OR (created_at = ? AND id < ?))", at, at, req.After.ID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list todos: %w", err)
	}
	todos := make([]domain.Todo, len(rows))
	for i := range rows {
		t, err := rows[i].todo()
		if err != nil {
			return nil, err
		}
		todos[i] = t
	}
	return todos, nil
}

// activityRow is the todo_activity table; its primary key is the event ID.
type activityRow struct {
	bun.BaseModel `bun:"table:todo_activity"`
	ID            string `bun:"id,pk"`
	EventType     string `bun:"event_type"`
	TodoID        string `bun:"todo_id"`
	Title         string `bun:"title"`
	OccurredAt    string `bun:"occurred_at"`
	RecordedAt    string `bun:"recorded_at"`
}

// ActivityRepository implements app.ActivityRepository with bun, on the
// root database or a transaction.
type ActivityRepository struct {
	db bun.IDB
}

// NewActivityRepository returns a repository on db (a *bun.DB or a bun.Tx).
func NewActivityRepository(db bun.IDB) *ActivityRepository { return &ActivityRepository{db: db} }

// Record implements app.ActivityRepository with an insert that ignores a
// duplicate ID (ON CONFLICT DO NOTHING on PostgreSQL and SQLite, INSERT
// IGNORE on MySQL).
func (r *ActivityRepository) Record(ctx context.Context, e app.ActivityEntry) (bool, error) {
	row := &activityRow{ID: e.ID, EventType: e.Type, TodoID: e.TodoID, Title: e.Title,
		OccurredAt: core.FormatTime(e.OccurredAt), RecordedAt: core.FormatTime(e.RecordedAt)}
	res, err := r.db.NewInsert().Model(row).Ignore().Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("insert activity %s: %w", e.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert activity %s: %w", e.ID, err)
	}
	return n == 1, nil
}

// List implements app.ActivityRepository.
func (r *ActivityRepository) List(ctx context.Context, req domain.PageRequest) ([]app.ActivityEntry, error) {
	var rows []activityRow
	q := r.db.NewSelect().Model(&rows).OrderExpr("occurred_at DESC, id DESC").Limit(int64(req.Limit))
	if req.After != nil {
		at := core.FormatTime(req.After.At)
		q = q.Where("(occurred_at < ? OR (occurred_at = ? AND id < ?))", at, at, req.After.ID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	entries := make([]app.ActivityEntry, len(rows))
	for i, row := range rows {
		occurred, err := core.ParseTime(row.OccurredAt)
		if err != nil {
			return nil, fmt.Errorf("activity %s: occurred_at: %w", row.ID, err)
		}
		recorded, err := core.ParseTime(row.RecordedAt)
		if err != nil {
			return nil, fmt.Errorf("activity %s: recorded_at: %w", row.ID, err)
		}
		entries[i] = app.ActivityEntry{ID: row.ID, Type: row.EventType, TodoID: row.TodoID, Title: row.Title, OccurredAt: occurred, RecordedAt: recorded}
	}
	return entries, nil
}

var (
	_ domain.TodoRepository  = (*TodoRepository)(nil)
	_ app.ActivityRepository = (*ActivityRepository)(nil)
)
