package moduleclient

import "sync/atomic"

// queue is a bounded hand-off between the network loop and the goroutine that runs one kind
// of user callback. The network side never blocks: offer fails when the queue is full and the
// caller decides what a drop means (an unacknowledged message the hub redelivers, a desired
// patch recovered by a twin resync, a method call the caller sees time out). Drops are counted.
type queue[T any] struct {
	ch      chan T
	dropped atomic.Int64
}

func newQueue[T any](size int) *queue[T] {
	return &queue[T]{ch: make(chan T, size)}
}

// offer enqueues v without blocking and reports whether it fitted.
func (q *queue[T]) offer(v T) bool {
	select {
	case q.ch <- v:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// run calls fn for each item, in order, until stop is closed.
func (q *queue[T]) run(stop <-chan struct{}, fn func(T)) {
	for {
		select {
		case <-stop:
			return
		case v := <-q.ch:
			fn(v)
		}
	}
}
