package check

import (
	"strings"
	"testing"
	"time"
)

// An operation kind the model does not know is an error naming the kind,
// not an operation silently left out of the history.
func TestUnknownKindIsAnError(t *testing.T) {
	for _, outcome := range []string{"ok", "unknown", "failed"} {
		h := []Op{put(0, "k", "a", 0, 10, "ok"),
			{Client: 1, Kind: "cas", Key: "k", Call: 20, Return: 30, Outcome: outcome},
			get(0, "k", "a", true, 40, 50)}
		res, err := Linearizable(h, 10*time.Second)
		if err == nil {
			t.Fatalf("outcome %s: a cas was accepted (verdict %s)", outcome, res.Verdict)
		}
		if !strings.Contains(err.Error(), `"cas"`) {
			t.Fatalf("outcome %s: the error %q does not name the kind", outcome, err)
		}
		if res.Verdict == Ok {
			t.Fatalf("outcome %s: verdict ok for a history the checker refused", outcome)
		}
	}
}

// A delete is a write of absence: a read after an acknowledged delete must
// not find the old value, and one that finds nothing is fine.
func TestDeleteModelled(t *testing.T) {
	del := Op{Client: 1, Kind: "delete", Key: "k", Call: 20, Return: 30, Outcome: "ok"}
	ok := []Op{put(0, "k", "a", 0, 10, "ok"), del, get(0, "k", "", false, 40, 50)}
	if res, err := Linearizable(ok, 10*time.Second); err != nil || res.Verdict != Ok {
		t.Fatalf("put, delete, get not found: verdict %s, %v", res.Verdict, err)
	}
	stale := []Op{put(0, "k", "a", 0, 10, "ok"), del, get(0, "k", "a", true, 40, 50)}
	if res, err := Linearizable(stale, 10*time.Second); err != nil || res.Verdict != Illegal {
		t.Fatalf("a read of the deleted value after the delete returned: verdict %s, %v (want illegal)", res.Verdict, err)
	}
	unknown := []Op{put(0, "k", "a", 0, 10, "ok"), {Client: 1, Kind: "delete", Key: "k", Call: 20, Return: 30, Outcome: "unknown"}, get(0, "k", "", false, 40, 50)}
	if res, err := Linearizable(unknown, 10*time.Second); err != nil || res.Verdict != Ok {
		t.Fatalf("a delete of unknown outcome may have applied: verdict %s, %v", res.Verdict, err)
	}
}
