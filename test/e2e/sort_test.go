package e2e

import (
	"slices"

	eventsv1 "k8s.io/api/events/v1"
)

// sortEvents orders events by when they happened (eventTime, with
// microseconds).
func sortEvents(evs []eventsv1.Event) {
	slices.SortStableFunc(evs, func(a, b eventsv1.Event) int { return a.EventTime.Time.Compare(b.EventTime.Time) })
}

// count is how many times an event series happened.
func countOf(e eventsv1.Event) int32 {
	if e.Series != nil {
		return e.Series.Count
	}
	return 1
}
