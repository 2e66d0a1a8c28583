package controller

import (
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/reconfig"
)

// ReasonOf turns an invariant's name into a condition reason:
// "promote-only-caught-up-and-durable" -> "PromoteOnlyCaughtUpAndDurable".
func ReasonOf(inv reconfig.Invariant) string {
	var b strings.Builder
	for _, w := range strings.Split(string(inv), "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// PolicyOf is the reconfig policy a spec asks for. RateLimit "N/unit"
// becomes a cooldown of unit/N between two changes.
func PolicyOf(spec v1.RaftClusterSpec) reconfig.Policy {
	p := reconfig.DefaultPolicy()
	rs := spec.Reconfig
	if d, ok := parseRate(rs.RateLimit); ok {
		p.RateLimit = d
	}
	p.MaxLag = uint64(max(rs.CatchUpMaxLag, 0))
	if rs.Stabilization != nil {
		p.Stabilization = rs.Stabilization.Duration
	}
	p.FlapThreshold = int(rs.LeaderFlapThreshold)
	if rs.LeaderFlapWindow != nil {
		p.FlapWindow = rs.LeaderFlapWindow.Duration
	}
	return p
}

// parseRate reads "N/s", "N/min" or "N/h" (the CRD validates the form).
func parseRate(s string) (time.Duration, bool) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	var count int64
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
		count = count*10 + int64(c-'0')
		if count > 1e9 {
			return 0, false
		}
	}
	if count == 0 {
		return 0, false
	}
	per := map[string]time.Duration{"s": time.Second, "min": time.Minute, "h": time.Hour}[unit]
	if per == 0 {
		return 0, false
	}
	return per / time.Duration(count), true
}

// memberStatuses describes every member of the configuration in force and
// every pod of the StatefulSet, in ordinal order.
func memberStatuses(rc *v1.RaftCluster, obs reconfig.Observation, p reconfig.Policy, podReady map[string]bool) []v1.MemberStatus {
	cfg := obs.Config
	ids := slices.Concat(cfg.Voters, cfg.OutgoingVoters, cfg.Learners)
	for id := range podReady {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if oa, ob := Ordinal(rc, a), Ordinal(rc, b); oa != ob {
			return oa - ob
		}
		return strings.Compare(a, b)
	})
	ids = slices.Compact(ids)
	out := make([]v1.MemberStatus, 0, len(ids))
	for _, id := range ids {
		m := v1.MemberStatus{ID: id, Role: v1.RoleNone, PodReady: podReady[id]}
		inNew, inOld := slices.Contains(cfg.Voters, id), slices.Contains(cfg.OutgoingVoters, id)
		switch {
		case inNew || inOld:
			m.Role = v1.RoleVoter
		case slices.Contains(cfg.Learners, id):
			m.Role = v1.RoleLearner
		}
		if cfg.IsJoint() {
			switch {
			case inNew && !inOld:
				m.Joint = "incoming"
			case inOld && !inNew:
				m.Joint = "outgoing"
			}
		}
		if mo, ok := obs.Members[id]; ok && obs.Leader != "" {
			m.MatchIndex = int64(mo.Match)
			if obs.LastIndex > mo.Match {
				m.Lag = int64(obs.LastIndex - mo.Match)
			}
			m.Reachable = mo.Reachable
			m.CaughtUp = mo.Reachable && mo.Durable && obs.LastIndex <= mo.Match+p.MaxLag
		}
		out = append(out, m)
	}
	return out
}

// jointStateName is the status form of a joint state.
func jointStateName(j raftcore.JointState) string {
	switch j {
	case raftcore.JointEntering:
		return "entering"
	case raftcore.JointCommitted:
		return "committed"
	case raftcore.JointLeaving:
		return "leaving"
	}
	return "none"
}

// setCondition sets one condition, keeping its transition time when its
// status does not change.
func setCondition(st *v1.RaftClusterStatus, typ string, ok bool, reason, msg string, gen int64, now time.Time) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	c := metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		LastTransitionTime: metav1.NewTime(now)}
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			if st.Conditions[i].Status == status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// condition returns the condition of type typ, or nil.
func condition(st *v1.RaftClusterStatus, typ string) *metav1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}
