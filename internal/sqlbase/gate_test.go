package sqlbase

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGateExcludesAndReenters(t *testing.T) {
	g := NewGate(0)
	ctx, leave, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// Another caller waits; with a cancelled context it gives up at once.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := g.Enter(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enter on a held gate with a cancelled context: err = %v, want context.Canceled", err)
	}

	// The holder's context (and contexts derived from it) pass at once.
	inner, cancelInner := context.WithCancel(ctx)
	defer cancelInner()
	ctx2, leave2, err := g.Enter(inner)
	if err != nil {
		t.Fatal(err)
	}
	if ctx2 != inner {
		t.Fatal("reentering must not create a new holder")
	}
	leave2() // a no-op: the outer holder still holds the gate
	if _, _, err := g.Enter(cancelled); err == nil {
		t.Fatal("leaving a reentered gate released the outer holder's gate")
	}

	leave()
	leave() // leaving twice is harmless
	// Released: a new caller gets in, and the old holder's context no longer
	// counts as inside.
	_, leave3, err := g.Enter(cancelled)
	if err != nil {
		t.Fatalf("Enter on a free gate: %v", err)
	}
	if _, _, err := g.Enter(withCancelled(ctx)); !errors.Is(err, context.Canceled) {
		t.Fatalf("a stale holder context must wait like any other: err = %v", err)
	}
	leave3()
}

func withCancelled(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	cancel()
	return ctx
}

func TestGatePatienceLetsWaitersThroughUngated(t *testing.T) {
	g := NewGate(time.Millisecond)
	_, leave, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	// The gate stays held; after its patience the waiter goes through
	// without it (no error, a no-op leave).
	ctx, leave2, err := g.Enter(context.Background())
	if err != nil {
		t.Fatalf("waiting past the patience: %v", err)
	}
	leave2()
	if _, ok := ctx.Value(g).(*holder); ok {
		t.Fatal("a waiter that passed without the gate must not be marked as inside it")
	}
	if _, _, err := g.Enter(withCancelled(context.Background())); !errors.Is(err, context.Canceled) {
		t.Fatal("the no-op leave of a pass-through released the real holder's gate")
	}
}

func TestNilGateNeverWaits(t *testing.T) {
	var g *Gate
	ctx := context.Background()
	got, leave, err := g.Enter(ctx)
	if err != nil || got != ctx {
		t.Fatalf("nil gate: ctx changed or err %v", err)
	}
	leave()
}

// TestGateReentersAnOuterGate: inside gate a, then gate b, the context
// still enters a without waiting (a unit of work on one database nested in
// one on another, writing to the first).
func TestGateReentersAnOuterGate(t *testing.T) {
	a, b := NewGate(0), NewGate(0)
	ctxA, leaveA, err := a.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leaveA()
	ctxB, leaveB, err := b.Enter(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	defer leaveB()
	// A cancelled context fails at once if it has to wait: it must not.
	inner, cancel := context.WithCancel(ctxB)
	cancel()
	if _, leave, err := a.Enter(inner); err != nil {
		t.Fatalf("entering the outer gate from inside the inner one waited: %v", err)
	} else {
		leave()
	}
	if _, leave, err := b.Enter(inner); err != nil {
		t.Fatalf("re-entering the inner gate waited: %v", err)
	} else {
		leave()
	}
}
