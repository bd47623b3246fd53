package relay

import "sync"

// workerPool runs a pass's handlers on at most Concurrency long-lived
// goroutines, started as they are needed.
//
// Dispatched messages wait in a FIFO queue. Waking a parked goroutine costs
// far more than a no-op handler, so the pool wakes workers one at a time: a
// dispatch wakes (or starts) one worker, and a worker that takes a message
// and sees more queued wakes the next one, unless a wake-up is already on
// its way. Fast handlers are thus run back to back by the few workers that
// are awake, while slow ones make the chain wake every worker the queue
// needs. Whenever the queue is not empty, a worker is being woken, or every
// worker is busy (then one of them takes the next message when it is done:
// the queue never holds more than the free slots, see pass.running).
type workerPool struct {
	mu      sync.Mutex
	queue   []*delivery // queue[head:] wait for a worker
	head    int
	idle    []chan struct{} // wake channels of parked workers
	started int             // goroutines started, never more than limit
	limit   int
	waking  bool // a worker was woken (or started) and has not looked at the queue yet
	closed  bool
	run     func(*delivery)
}

// push queues ds and makes sure a worker is coming for them.
func (wp *workerPool) push(ds []*delivery) {
	wp.mu.Lock()
	wp.queue = append(wp.queue, ds...)
	wake, start := wp.wakeOneLocked()
	wp.mu.Unlock()
	wp.signal(wake, start)
}

// wakeOneLocked picks a worker to wake (or decides to start one) unless a
// wake-up is already under way. The caller signals it after unlocking.
func (wp *workerPool) wakeOneLocked() (wake chan struct{}, start bool) {
	if wp.waking {
		return nil, false
	}
	if n := len(wp.idle); n > 0 {
		wake = wp.idle[n-1]
		wp.idle = wp.idle[:n-1]
		wp.waking = true
		return wake, false
	}
	if wp.started < wp.limit {
		wp.started++
		wp.waking = true
		return nil, true
	}
	return nil, false // every worker is busy
}

func (wp *workerPool) signal(wake chan struct{}, start bool) {
	switch {
	case wake != nil:
		wake <- struct{}{} // buffered: a parked worker's channel is empty
	case start:
		go wp.worker()
	}
}

// worker runs queued deliveries until the pool is closed.
func (wp *workerPool) worker() {
	wake := make(chan struct{}, 1)
	woken := true // started by a dispatch or another worker
	for {
		wp.mu.Lock()
		if woken {
			wp.waking = false
			woken = false
		}
		if wp.head < len(wp.queue) {
			d := wp.queue[wp.head]
			wp.queue[wp.head] = nil
			wp.head++
			if wp.head == len(wp.queue) {
				wp.queue, wp.head = wp.queue[:0], 0
			}
			var next chan struct{}
			var start bool
			if wp.head < len(wp.queue) {
				next, start = wp.wakeOneLocked()
			}
			wp.mu.Unlock()
			wp.signal(next, start)
			wp.run(d)
			continue
		}
		if wp.closed {
			wp.mu.Unlock()
			return
		}
		wp.idle = append(wp.idle, wake)
		wp.mu.Unlock()
		<-wake
		woken = true
	}
}

// close lets the workers exit once the queue is empty: parked ones at once,
// busy ones when their handler returns.
func (wp *workerPool) close() {
	wp.mu.Lock()
	wp.closed = true
	idle := wp.idle
	wp.idle = nil
	wp.mu.Unlock()
	for _, wake := range idle {
		wake <- struct{}{}
	}
}
