// Package app holds the todo use cases. It depends on the domain and on
// wharf's ports, core and core/relay only: the unit of work, the event
// recorder and the idempotency store arrive through TxPorts, built by the
// composition root's unit of work for every transaction. It never sees bun,
// SQL or HTTP.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/examples/todo/internal/domain"
	"github.com/wharf-go/wharf/ports"
)

// TodoEvent is the payload of every todo event.
type TodoEvent struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// The todo events. Use cases record them in their transaction through the
// outbox; the relay delivers them to the activity projection.
var (
	// TodoCreated is recorded by Create, with the new todo's ID and title.
	TodoCreated = core.DefineEvent[TodoEvent]("todo.created")
	// TodoCompleted is recorded by Complete when it completes an open todo.
	TodoCompleted = core.DefineEvent[TodoEvent]("todo.completed")
	// TodoDeleted is recorded by Delete, with the deleted todo's ID and title.
	TodoDeleted = core.DefineEvent[TodoEvent]("todo.deleted")
)

// OrderingKey gives all events of one todo the same outbox ordering key, so
// that the relay delivers them in order (the driver's EventKey option).
// Other events get none.
func OrderingKey(ev ports.Event) string {
	var p TodoEvent
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.ID == "" {
		return ""
	}
	return "todo:" + p.ID
}

// ActivityEntry is one line of the activity feed: a todo event, as the
// projection recorded it.
type ActivityEntry struct {
	// ID is the event's ID, which makes recording idempotent.
	ID string
	// Type is the event name, e.g. "todo.created".
	Type       string
	TodoID     string
	Title      string
	OccurredAt time.Time
	// RecordedAt is when the projection wrote the entry.
	RecordedAt time.Time
}

// ActivityRepository stores the activity feed (a port of the app).
type ActivityRepository interface {
	// Record inserts e unless an entry with its ID exists, and reports
	// whether it inserted: a redelivered event is recorded once.
	Record(ctx context.Context, e ActivityEntry) (bool, error)
	// List returns up to req.Limit entries, newest first (OccurredAt, then
	// ID, descending), after req.After when set.
	List(ctx context.Context, req domain.PageRequest) ([]ActivityEntry, error)
}

// TxPorts are the ports of one transaction, built afresh by the unit of
// work for each: everything written through them commits or rolls back
// together.
type TxPorts struct {
	// Todos writes todos in the transaction.
	Todos domain.TodoRepository
	// Activity writes the activity feed in the transaction.
	Activity ActivityRepository
	// Events records events into the outbox in the transaction (wharf's
	// Tx.Events, keyed by OrderingKey).
	Events ports.EventRecorder
	// Idempotency is the idempotency store bound to the transaction, so an
	// idempotency key completes atomically with the business write.
	Idempotency ports.Idempotency
}

// Options configures NewService.
type Options struct {
	// UnitOfWork runs transactions with TxPorts. Required.
	UnitOfWork ports.UnitOfWork[TxPorts]
	// Todos and Activity read from the root database (outside
	// transactions). Required.
	Todos    domain.TodoRepository
	Activity ActivityRepository
	// Now is the clock; nil means time.Now.
	Now core.Clock
	// NewID makes todo IDs; nil means core.NewID (UUIDv7).
	NewID func() string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service runs the todo use cases. It is safe for concurrent use.
type Service struct {
	uow      ports.UnitOfWork[TxPorts]
	todos    domain.TodoRepository
	activity ActivityRepository
	now      core.Clock
	newID    func() string
	logger   *slog.Logger
}

// NewService returns the use cases on opts' ports; a missing port is an
// error matching ports.ErrInvalidArgument.
func NewService(opts Options) (*Service, error) {
	if opts.UnitOfWork == nil || opts.Todos == nil || opts.Activity == nil {
		return nil, fmt.Errorf("app: UnitOfWork, Todos and Activity are required: %w", ports.ErrInvalidArgument)
	}
	s := &Service{uow: opts.UnitOfWork, todos: opts.Todos, activity: opts.Activity, now: opts.Now, newID: opts.NewID, logger: opts.Logger}
	if s.newID == nil {
		s.newID = core.NewID
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Transaction runs fn in one transaction. Use cases called with fn's ctx
// join it, so their rows and events commit together with whatever else fn
// writes through tx — the HTTP layer uses this to complete the request's
// idempotency key in the same transaction. fn may run more than once (the
// unit of work retries retryable conflicts).
func (s *Service) Transaction(ctx context.Context, fn func(ctx context.Context, tx TxPorts) error) error {
	return s.uow.Transaction(ctx, fn)
}

// Create adds an open todo and records TodoCreated in the same
// transaction. An invalid title is a *domain.ValidationError.
func (s *Service) Create(ctx context.Context, title string) (domain.Todo, error) {
	now := s.now.Now()
	todo, err := domain.NewTodo(s.newID(), title, now)
	if err != nil {
		return domain.Todo{}, err
	}
	err = s.uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
		if err := tx.Todos.Add(ctx, todo); err != nil {
			return err
		}
		return record(ctx, tx.Events, TodoCreated, TodoEvent{ID: todo.ID, Title: todo.Title}, now)
	})
	if err != nil {
		return domain.Todo{}, fmt.Errorf("create todo: %w", err)
	}
	return todo, nil
}

// Get returns one todo: a malformed ID is a *domain.ValidationError, an
// unknown one matches domain.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (domain.Todo, error) {
	if err := domain.ValidateID(id); err != nil {
		return domain.Todo{}, err
	}
	return s.todos.Get(ctx, id)
}

// List returns one page of todos, newest first. req.Limit must be positive.
func (s *Service) List(ctx context.Context, req domain.PageRequest) (domain.Page[domain.Todo], error) {
	return page(ctx, req, s.todos.List, func(t domain.Todo) domain.Position {
		return domain.Position{At: t.CreatedAt, ID: t.ID}
	})
}

// Complete marks a todo done and records TodoCompleted in the same
// transaction. Completing a completed todo returns it unchanged and records
// nothing. Errors are those of Get.
func (s *Service) Complete(ctx context.Context, id string) (domain.Todo, error) {
	if err := domain.ValidateID(id); err != nil {
		return domain.Todo{}, err
	}
	var todo domain.Todo
	err := s.uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
		t, err := tx.Todos.GetForUpdate(ctx, id)
		if err != nil {
			return err
		}
		now := s.now.Now()
		todo = t
		if !todo.Complete(now) {
			return nil
		}
		if err := tx.Todos.Update(ctx, todo); err != nil {
			return err
		}
		return record(ctx, tx.Events, TodoCompleted, TodoEvent{ID: todo.ID, Title: todo.Title}, now)
	})
	if err != nil {
		return domain.Todo{}, fmt.Errorf("complete todo: %w", err)
	}
	return todo, nil
}

// Delete removes a todo and records TodoDeleted in the same transaction.
// It returns the deleted todo. Errors are those of Get.
func (s *Service) Delete(ctx context.Context, id string) (domain.Todo, error) {
	if err := domain.ValidateID(id); err != nil {
		return domain.Todo{}, err
	}
	var todo domain.Todo
	err := s.uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
		t, err := tx.Todos.GetForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.Todos.Remove(ctx, id); err != nil {
			return err
		}
		todo = t
		return record(ctx, tx.Events, TodoDeleted, TodoEvent{ID: t.ID, Title: t.Title}, s.now.Now())
	})
	if err != nil {
		return domain.Todo{}, fmt.Errorf("delete todo: %w", err)
	}
	return todo, nil
}

// Activity returns one page of the activity feed, newest first.
func (s *Service) Activity(ctx context.Context, req domain.PageRequest) (domain.Page[ActivityEntry], error) {
	return page(ctx, req, s.activity.List, func(e ActivityEntry) domain.Position {
		return domain.Position{At: e.OccurredAt, ID: e.ID}
	})
}

// RegisterHandlers registers the activity projection on hs: every todo
// event becomes one activity entry. Delivery is at least once; the entry's
// ID is the event's ID and Record ignores a second insert, so a redelivered
// event is recorded exactly once. (Without such a natural key, wrap the
// handler with relay.EffectivelyOnceTx.)
func (s *Service) RegisterHandlers(hs *relay.Handlers) error {
	for _, ev := range []core.EventType[TodoEvent]{TodoCreated, TodoCompleted, TodoDeleted} {
		if err := relay.HandleEvent(hs, ev, s.project, relay.TopicOptions{}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) project(ctx context.Context, p TodoEvent, ev ports.Event) error {
	entry := ActivityEntry{ID: ev.ID, Type: ev.Name, TodoID: p.ID, Title: p.Title, OccurredAt: ev.OccurredAt.UTC(), RecordedAt: s.now.Now()}
	var added bool
	err := s.uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
		var err error
		added, err = tx.Activity.Record(ctx, entry)
		return err
	})
	if err != nil {
		return fmt.Errorf("record activity of event %s (%s): %w", ev.ID, ev.Name, err)
	}
	if !added {
		s.logger.LogAttrs(ctx, slog.LevelDebug, "event already in the activity feed (redelivery)", slog.String("event_id", ev.ID), slog.String("event", ev.Name))
	}
	return nil
}

// record records a typed event that occurred at at, the instant of the
// change it describes.
func record[P any](ctx context.Context, rec ports.EventRecorder, et core.EventType[P], payload P, at time.Time) error {
	ev, err := et.New(payload)
	if err != nil {
		return err
	}
	ev.OccurredAt = at
	return rec.Record(ctx, ev)
}

// page fetches one item more than asked to learn whether a next page
// exists.
func page[T any](ctx context.Context, req domain.PageRequest, list func(context.Context, domain.PageRequest) ([]T, error), pos func(T) domain.Position) (domain.Page[T], error) {
	if req.Limit <= 0 {
		return domain.Page[T]{}, fmt.Errorf("app: page limit %d must be positive: %w", req.Limit, ports.ErrInvalidArgument)
	}
	want := req.Limit
	req.Limit++
	items, err := list(ctx, req)
	if err != nil {
		return domain.Page[T]{}, err
	}
	p := domain.Page[T]{Items: items}
	if len(items) > want {
		p.Items = items[:want]
		next := pos(p.Items[want-1])
		p.Next = &next
	}
	return p, nil
}
