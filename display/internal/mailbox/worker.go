package mailbox

import "sync"

// Worker is a Box with the goroutine that takes from it: each value Put is
// handed to work, latest first, at the worker's pace. Outputs that only
// draw (the terminal, PNG files) are one each.
type Worker[T any] struct {
	box  *Box[T]
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NewWorker starts the goroutine that calls work with each value taken.
func NewWorker[T any](work func(T)) *Worker[T] {
	w := &Worker[T]{box: New[T](), done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		take := func() {
			if v, ok := w.box.Take(); ok {
				work(v)
			}
		}
		for {
			select {
			case <-w.done:
				take() // a value still waiting is done before stopping
				return
			case <-w.box.C():
				take()
			}
		}
	}()
	return w
}

// Put hands v to the worker and returns at once.
func (w *Worker[T]) Put(v T) { w.box.Put(v) }

// Stop does a value still waiting, then stops the goroutine; later calls do
// nothing.
func (w *Worker[T]) Stop() {
	w.once.Do(func() {
		close(w.done)
		w.wg.Wait()
	})
}
