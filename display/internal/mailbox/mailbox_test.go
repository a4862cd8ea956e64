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
