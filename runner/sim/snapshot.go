package sim

import (
	"slices"

	"github.com/raftlab/raftlab/raftcore"
)

// transfer is a snapshot on its way from a leader to a peer. It takes the
// link's delay plus its size over the snapshot bandwidth, and needs the
// link for all of that time: a cut (or either end crashing) while it is in
// flight fails it, as a broken connection fails a stream.
type transfer struct {
	from    *node
	fromGen int
	to      *node
	toGen   int
	m       raftcore.Message
	over    bool
}

// sendSnapshot starts sending a MsgSnap from n. Only a snapshot that
// arrived is reported finished (ReportSnapshot true); one that failed is
// reported failed, so the leader probes the peer again and may send
// another. Loss and duplication do not apply: the stream retransmits, and
// it is delivered once.
func (c *Cluster) sendSnapshot(n *node, m raftcore.Message) {
	t := &transfer{from: n, fromGen: n.gen, m: m, to: c.nodes[m.To]}
	if t.to != nil {
		t.toGen = t.to.gen
	}
	c.transfers = append(c.transfers, t)
	if !c.transferOK(t) {
		c.failTransfer(t)
		return
	}
	size := int64(snapshotOverhead)
	if m.Snapshot != nil {
		size += int64(len(m.Snapshot.Data))
	}
	ms := int64(c.net.LinkFaultsOf(n.id, m.To).Delay) + (size+c.snapKBps-1)/c.snapKBps
	c.schedule(c.now+ms, func() { c.completeTransfer(t) })
}

// transferOK: both ends still run the boot the transfer began with, and
// the link is not cut.
func (c *Cluster) transferOK(t *transfer) bool {
	return t.from.gen == t.fromGen && t.from.rn != nil &&
		t.to != nil && t.to.gen == t.toGen && t.to.rn != nil &&
		c.net.Connected(t.from.id, t.m.To)
}

func (c *Cluster) endTransfer(t *transfer) {
	t.over = true
	c.transfers = slices.DeleteFunc(c.transfers, func(u *transfer) bool { return u == t })
}

// completeTransfer delivers the snapshot, unless it failed meanwhile, and
// tells the sender.
func (c *Cluster) completeTransfer(t *transfer) {
	if t.over {
		return
	}
	if !c.transferOK(t) {
		c.failTransfer(t)
		return
	}
	c.endTransfer(t)
	c.deliver(t.m)
	c.snapDelivered++
	c.reportSnapshot(t, true)
}

// failTransfer ends a transfer as failed and tells the sender, if it still
// runs the boot that sent it (a crashed sender forgot it).
func (c *Cluster) failTransfer(t *transfer) {
	c.endTransfer(t)
	c.snapFailed++
	c.reportSnapshot(t, false)
}

func (c *Cluster) reportSnapshot(t *transfer, ok bool) {
	n, gen, to := t.from, t.fromGen, t.m.To
	c.schedule(c.now, func() {
		c.whenRunning(n, func() {
			if n.gen == gen && n.rn != nil {
				n.rn.ReportSnapshot(to, ok)
			}
		})
	})
}

// checkTransfers fails the transfers in flight that can no longer finish:
// the network changed or a node crashed.
func (c *Cluster) checkTransfers() {
	for _, t := range slices.Clone(c.transfers) {
		if !c.transferOK(t) {
			c.failTransfer(t)
		}
	}
}

// Snapshots counts the snapshot transfers that were delivered and that
// failed so far (for tests and debugging; backend.Stats has no field yet).
func (c *Cluster) Snapshots() (delivered, failed int) { return c.snapDelivered, c.snapFailed }
