package mailbox

import "testing"

func TestLatestWins(t *testing.T) {
	b := New[int]()
	if _, ok := b.Take(); ok {
		t.Fatal("empty box gave a value")
	}
	b.Put(1)
	b.Put(2)
	<-b.C()
	if v, ok := b.Take(); !ok || v != 2 {
		t.Fatalf("Take = %d, %v; want 2, true", v, ok)
	}
	if _, ok := b.Take(); ok {
		t.Fatal("second Take gave a value")
	}
	select {
	case <-b.C():
		t.Fatal("C ready with nothing put")
	default:
	}
}

func TestWorkerDoesLatestAndTheLastOnStop(t *testing.T) {
	got := make(chan int, 10)
	started, block := make(chan struct{}), make(chan struct{})
	w := NewWorker(func(v int) {
		if v == 1 {
			close(started)
			<-block // busy with 1 while 2 and 3 arrive
		}
		got <- v
	})
	w.Put(1)
	<-started
	w.Put(2)
	w.Put(3)
	close(block)
	w.Stop()
	w.Stop()
	close(got)
	var seq []int
	for v := range got {
		seq = append(seq, v)
	}
	if len(seq) != 2 || seq[0] != 1 || seq[1] != 3 {
		t.Fatalf("worked %v, want [1 3]", seq)
	}
}
