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
			{Client: 1, Kind: "delete", Key: "k", Call: 20, Return: 30, Outcome: outcome},
			get(0, "k", "a", true, 40, 50)}
		res, err := Linearizable(h, 10*time.Second)
		if err == nil {
			t.Fatalf("outcome %s: a delete was accepted (verdict %s)", outcome, res.Verdict)
		}
		if !strings.Contains(err.Error(), `"delete"`) {
			t.Fatalf("outcome %s: the error %q does not name the kind", outcome, err)
		}
		if res.Verdict == Ok {
			t.Fatalf("outcome %s: verdict ok for a history the checker refused", outcome)
		}
	}
}
