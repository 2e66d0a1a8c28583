package raftcore

import "testing"

func hb(from, to string) Message { return Message{Type: MsgHeartbeat, From: from, To: to, Term: 1} }

// TestMemNetworkDuplicates: Duplicate 1 delivers every message twice.
func TestMemNetworkDuplicates(t *testing.T) {
	n := NewMemNetwork(1)
	n.SetLinkFaults("a", "b", LinkFaults{Duplicate: 1})
	n.SendFrom("a", []Message{hb("a", "b"), hb("a", "b")})
	n.SendFrom("b", []Message{hb("b", "a")})
	if got := len(n.Deliverable()); got != 5 {
		t.Fatalf("%d delivered, want 2 twice and 1 once", got)
	}
	if n.Duplicated != 2 {
		t.Fatalf("Duplicated = %d, want 2", n.Duplicated)
	}
}

// TestMemNetworkCutAfterSend: a message delayed on its link is judged at
// delivery: a cut set while it is in flight drops it.
func TestMemNetworkCutAfterSend(t *testing.T) {
	for _, lose := range []bool{false, true} {
		n := NewMemNetwork(1)
		n.LoseOnCut = lose
		n.SetFaults(LinkFaults{Delay: 10})
		n.SendFrom("a", []Message{hb("a", "b")})
		n.AdvanceTime(5)
		n.Cut("a", "b")
		n.AdvanceTime(5)
		if got := n.Deliverable(); len(got) != 0 {
			t.Fatalf("LoseOnCut %v: a message crossed a cut set while it was in flight: %v", lose, got)
		}
	}
}

// TestMemNetworkLoseOnCut: with LoseOnCut, a message sent on a cut link
// is lost even if the link heals before it is due; without it, only the
// link's state at delivery counts (what memcluster relies on).
func TestMemNetworkLoseOnCut(t *testing.T) {
	for _, lose := range []bool{false, true} {
		n := NewMemNetwork(1)
		n.LoseOnCut = lose
		n.SetFaults(LinkFaults{Delay: 10})
		n.Cut("a", "b")
		n.SendFrom("a", []Message{hb("a", "b")})
		n.SetLinks(nil, nil)
		n.AdvanceTime(10)
		if got, want := len(n.Deliverable()), map[bool]int{false: 1, true: 0}[lose]; got != want {
			t.Fatalf("LoseOnCut %v: %d delivered, want %d", lose, got, want)
		}
	}
}

// TestMemNetworkSetLinks: SetLinks replaces every cut and per-link fault
// at once, one direction at a time; the default faults stay.
func TestMemNetworkSetLinks(t *testing.T) {
	n := NewMemNetwork(1)
	def := LinkFaults{Delay: 1, Jitter: 2}
	n.SetFaults(def)
	n.Cut("c", "a")
	n.SetLinkFaults("c", "b", LinkFaults{Delay: 9})
	slow := LinkFaults{Delay: 7, Drop: 0.5}
	n.SetLinks(map[[2]string]bool{{"a", "b"}: true}, map[[2]string]LinkFaults{{"b", "c"}: slow})
	switch {
	case n.Connected("a", "b"), !n.Connected("b", "a"):
		t.Fatal("the cut a->b must be one way")
	case !n.Connected("c", "a"):
		t.Fatal("the earlier cut c->a must be gone")
	case n.LinkFaultsOf("b", "c") != slow, n.LinkFaultsOf("c", "b") != def:
		t.Fatalf("faults b->c %+v, c->b %+v", n.LinkFaultsOf("b", "c"), n.LinkFaultsOf("c", "b"))
	}
}
