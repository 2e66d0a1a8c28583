package kvserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics is one server's Prometheus registry (not the global one, so that
// several servers can live in one test process).
type metrics struct {
	reg      *prometheus.Registry
	fsync    prometheus.Histogram
	requests *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "raftkv_fsync_seconds",
		Help:    "Time the loop waited for a group-committed fsync of the WAL.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raftkv_requests_total",
		Help: "Client API requests by operation and outcome (ok, failed, unknown, notfound, rejected).",
	}, []string{"op", "outcome"})
	return m
}

func (m *metrics) register(n *node) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	s := &n.stats
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.fsync, m.requests,
		gauge("raftkv_term", "Current Raft term.", func() float64 { return float64(s.term.Load()) }),
		gauge("raftkv_is_leader", "1 if this node is the leader.", func() float64 {
			if s.isLeader.Load() {
				return 1
			}
			return 0
		}),
		counter("raftkv_leader_changes_total", "Times the known leader changed.", func() float64 { return float64(s.leaderChanges.Load()) }),
		gauge("raftkv_commit_index", "Commit index.", func() float64 { return float64(s.commit.Load()) }),
		gauge("raftkv_applied_index", "Applied index.", func() float64 { return float64(s.applied.Load()) }),
		gauge("raftkv_last_index", "Last log index.", func() float64 { return float64(s.lastIndex.Load()) }),
		gauge("raftkv_apply_lag_entries", "Commit index minus applied index.", func() float64 {
			c, a := s.commit.Load(), s.applied.Load()
			if c < a {
				return 0
			}
			return float64(c - a)
		}),
		counter("raftkv_proposals_total", "Client writes proposed on this node.", func() float64 { return float64(s.proposals.Load()) }),
		counter("raftkv_proposals_failed_total", "Proposals refused at once (no leader, transfer).", func() float64 { return float64(s.proposalsFailed.Load()) }),
		counter("raftkv_snapshots_total", "Snapshots taken by this node.", func() float64 { return float64(s.snapshots.Load()) }),
		gauge("raftkv_snapshot_bytes", "Size of the last snapshot taken.", func() float64 { return float64(s.snapshotBytes.Load()) }),
		counter("raftkv_fsyncs_total", "WAL fsyncs.", func() float64 { return float64(n.st.Fsyncs()) }),
		counter("raftkv_peer_messages_sent_total", "Messages written to peers.", func() float64 { return float64(n.tr.sent.Load()) }),
		counter("raftkv_peer_messages_dropped_total", "Messages dropped (fault injection, full queue, unknown peer).", func() float64 { return float64(n.tr.dropped.Load()) }),
		counter("raftkv_peer_auth_failures_total", "Inbound peer connections refused for a wrong or missing --peer-token.", func() float64 { return float64(n.tr.authFailures.Load()) }),
		counter("raftkv_peer_snapshots_sent_total", "Snapshots written out whole to a peer.", func() float64 { return float64(n.tr.snapsSent.Load()) }),
		counter("raftkv_peer_snapshots_failed_total", "Snapshots to a peer that failed (stalled, connection lost) or were dropped unsent.", func() float64 { return float64(n.tr.snapsFailed.Load()) }),
	)
}
