// Package domain holds the todo entity, its rules and the repository port
// the use cases need. It imports the standard library only: no wharf, no
// bun, no HTTP.
package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxTitleLength bounds a title, in characters (the todos.title column is
// VARCHAR(200)).
const MaxTitleLength = 200

// ErrNotFound is returned (wrapped) when no todo has the requested ID.
var ErrNotFound = errors.New("todo not found")

// ValidationError reports input that breaks a domain rule. Nothing is
// written when a use case returns one.
type ValidationError struct {
	// Field is the offending input: "title" or "id".
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

// Error implements error.
func (e *ValidationError) Error() string { return e.Message }

// Todo is one item of the list.
type Todo struct {
	// ID is a UUID (canonical lower-case text form).
	ID string
	// Title is 1 to MaxTitleLength characters, trimmed, without control
	// characters.
	Title string
	// CompletedAt is when the todo was completed; zero while it is open.
	CompletedAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewTodo returns an open todo with the given ID and title, created at now.
// An invalid title is a *ValidationError.
func NewTodo(id, title string, now time.Time) (Todo, error) {
	if err := ValidateID(id); err != nil {
		return Todo{}, err
	}
	title, err := NormalizeTitle(title)
	if err != nil {
		return Todo{}, err
	}
	return Todo{ID: id, Title: title, CreatedAt: now, UpdatedAt: now}, nil
}

// Completed reports whether the todo is done.
func (t Todo) Completed() bool { return !t.CompletedAt.IsZero() }

// Complete marks the todo done at now and reports whether it changed
// anything: completing a completed todo is a no-op that returns false.
func (t *Todo) Complete(now time.Time) bool {
	if t.Completed() {
		return false
	}
	t.CompletedAt, t.UpdatedAt = now, now
	return true
}

// NormalizeTitle trims surrounding white space and checks the rules of a
// title: not empty, at most MaxTitleLength characters, valid UTF-8, one line
// of text — no control characters (Cc), no line or paragraph separators
// (U+2028, U+2029) and no bidirectional embedding, override or isolate
// controls (U+202A-U+202E, U+2066-U+2069). A broken rule is a
// *ValidationError.
//
// Bidi controls are refused because they carry state past the end of the
// title: an unterminated U+202E (RIGHT-TO-LEFT OVERRIDE) reverses whatever
// a client displays after it, the "Trojan Source" trick, and a one-line
// title never needs them. The stateless marks U+200E, U+200F and U+061C
// (LRM, RLM, ALM), which mixed right-to-left text does need, are allowed.
func NormalizeTitle(title string) (string, error) {
	title = strings.TrimSpace(title)
	switch n := utf8.RuneCountInString(title); {
	case !utf8.ValidString(title):
		return "", &ValidationError{"title", "title is not valid UTF-8"}
	case n == 0:
		return "", &ValidationError{"title", `title must not be empty; send {"title": "what to do"}`}
	case n > MaxTitleLength:
		return "", &ValidationError{"title", fmt.Sprintf("title is %d characters long; the limit is %d", n, MaxTitleLength)}
	}
	for _, r := range title {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return "", &ValidationError{"title", fmt.Sprintf("title contains the control character %U; use printable text on one line", r)}
		case isBidiControl(r):
			return "", &ValidationError{"title", fmt.Sprintf("title contains the bidirectional control character %U; send the text without embedding, override or isolate controls (U+200E and U+200F marks are fine)", r)}
		}
	}
	return title, nil
}

// isBidiControl reports whether r is a bidirectional embedding, override
// or isolate control: LRE, RLE, PDF, LRO, RLO (U+202A-U+202E) and LRI, RLI,
// FSI, PDI (U+2066-U+2069).
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// ValidateID checks that id is a UUID in canonical lower-case form
// (8-4-4-4-12 hexadecimal digits). Anything else is a *ValidationError.
func ValidateID(id string) error {
	bad := &ValidationError{"id", fmt.Sprintf("id %q is not a todo ID; IDs are UUIDs such as 0192f7e0-6c1a-7b3e-9f4d-2a5b8c9d0e1f", truncate(id))}
	if len(id) != 36 {
		return bad
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return bad
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return bad
			}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Position is a place in a listing ordered newest first: At (a todo's
// CreatedAt, an activity entry's OccurredAt) descending, then ID
// descending. A page after a Position holds the items strictly after it in
// that order.
type Position struct {
	At time.Time
	ID string
}

// PageRequest asks for one page of a newest-first listing.
type PageRequest struct {
	// After, when set, continues the listing after this position (keyset
	// pagination: stable while rows are inserted).
	After *Position
	// Limit is the most items to return; positive.
	Limit int
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T
	// Next is the position to continue after, or nil on the last page.
	Next *Position
}

// TodoRepository stores todos. It is a port: the use cases depend on it, the
// infrastructure implements it (on the root database for reads, on a
// transaction for writes).
type TodoRepository interface {
	// Add inserts a new todo.
	Add(ctx context.Context, t Todo) error
	// Get returns the todo with id, or an error matching ErrNotFound.
	Get(ctx context.Context, id string) (Todo, error)
	// GetForUpdate is Get that, inside a transaction, also locks the todo
	// until the transaction ends, so concurrent changes of one todo queue up
	// instead of overwriting each other.
	GetForUpdate(ctx context.Context, id string) (Todo, error)
	// Update stores the changed fields of t, which the caller read in the
	// same transaction (with GetForUpdate).
	Update(ctx context.Context, t Todo) error
	// Remove deletes the todo with id, or returns an error matching
	// ErrNotFound.
	Remove(ctx context.Context, id string) error
	// List returns up to req.Limit todos, newest first (CreatedAt, then ID,
	// descending), after req.After when set.
	List(ctx context.Context, req PageRequest) ([]Todo, error)
}
