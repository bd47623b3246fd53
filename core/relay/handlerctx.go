package relay

import (
	"context"
	"sync"
)

// handlerCtx is the context a relay gives a handler: the values of Run's or
// Drain's ctx (without its cancellation), cancelled by the relay when it
// loses the message's claim, releases the message or cancels the handlers
// on a shutdown timeout. Unlike context.WithCancel it costs one small
// allocation: its Done channel is made only if the handler asks for it, and
// it registers with no parent (the pass cancels its deliveries itself).
// Contexts derived from it register through AfterFunc, so deriving one
// starts no goroutine.
type handlerCtx struct {
	context.Context // the pass's values; never done, no deadline

	mu    sync.Mutex
	done  chan struct{} // made on demand; closed on cancel
	err   error
	funcs map[*handlerAfterFunc]struct{}
}

type handlerAfterFunc struct{ f func() }

// closedChan is the Done channel of a handlerCtx cancelled before anyone
// asked for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newHandlerCtx(parent context.Context) *handlerCtx {
	return &handlerCtx{Context: parent}
}

// Done implements context.Context.
func (c *handlerCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err implements context.Context.
func (c *handlerCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run in its own goroutine once c is cancelled
// (at once if it already is), as context.AfterFunc does; stop prevents that
// and reports whether it did. The context package uses it for the contexts
// derived from c.
func (c *handlerCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &handlerAfterFunc{f: f}
	if c.funcs == nil {
		c.funcs = make(map[*handlerAfterFunc]struct{})
	}
	c.funcs[a] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.funcs[a]; !ok {
			return false
		}
		delete(c.funcs, a)
		return true
	}
}

// cancel cancels c (context.Canceled); later calls do nothing.
func (c *handlerCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for a := range funcs {
		go a.f()
	}
}

// String names the context, as the context package's do.
func (c *handlerCtx) String() string { return "relay.handlerContext" }
