package stats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
)

// durabilityCollector reads each resp-mode group's durable acknowledgements at scrape time: the
// sessions only add to the Durability's atomic counters, and this turns them into series. A group
// without a Durability (tcp mode) has none; one with wait_replicas = 0 has them all (zeros), so that
// increase() sees the first unconfirmed write after wait_replicas is turned on.
type durabilityCollector struct{ s *Server }

var (
	dDurReplicas    = desc("durable_wait_replicas", "wait_replicas: how many replicas must have a write before its client gets the reply (resp mode); 0 is off.", "group")
	dDurTimeout     = desc("durable_wait_timeout_seconds", "wait_timeout: how long each WAIT may take before the writes it covers are answered NOREPLICAS.", "group")
	dDurWaiting     = desc("durable_writes_waiting", "Write replies held for a WAIT now.", "group")
	dDurConfirmed   = desc("durable_writes_confirmed_total", "Write replies a WAIT confirmed: wait_replicas replicas had the write, and its client got the reply.", "group")
	dDurUnconfirmed = desc("durable_writes_unconfirmed_total", "Write replies the client got as a NOREPLICAS error instead: applied on the master, but fewer than wait_replicas replicas had them within wait_timeout (or the WAIT failed).", "group")
	dDurWait        = desc("durable_wait_seconds", "Latency of the proxy's WAITs: from sending one after writes to its answer.", "group")
	dDurAcked       = desc("durable_replicas_acked", "What the last WAIT answered: the replicas that had the writes. Absent before the first WAIT.", "group")
)

func (c *durabilityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dDurReplicas, dDurTimeout, dDurWaiting, dDurConfirmed, dDurUnconfirmed, dDurWait, dDurAcked} {
		ch <- d
	}
}

func (c *durabilityCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.s.cur().Groups {
		if g.Durability == nil {
			continue
		}
		n := g.Durability.Counts()
		ch <- prometheus.MustNewConstMetric(dDurReplicas, prometheus.GaugeValue, float64(n.Replicas), g.Name)
		ch <- prometheus.MustNewConstMetric(dDurTimeout, prometheus.GaugeValue, n.Timeout.Seconds(), g.Name)
		ch <- prometheus.MustNewConstMetric(dDurWaiting, prometheus.GaugeValue, float64(n.Waiting), g.Name)
		ch <- prometheus.MustNewConstMetric(dDurConfirmed, prometheus.CounterValue, float64(n.Confirmed), g.Name)
		ch <- prometheus.MustNewConstMetric(dDurUnconfirmed, prometheus.CounterValue, float64(n.Unconfirmed), g.Name)
		ch <- waitHistogram(n, g.Name)
		if n.Waits > 0 {
			ch <- prometheus.MustNewConstMetric(dDurAcked, prometheus.GaugeValue, float64(n.LastReplicas), g.Name)
		}
	}
}

// waitHistogram is the WAIT latency histogram of n. Its count is the +Inf bucket rather than n.Waits:
// the counters are read one by one while WAITs are answered, and a count below the last bucket would
// make a histogram that goes down.
func waitHistogram(n respsession.DurabilityCounts, group string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(respsession.WaitBuckets))
	for i, bound := range respsession.WaitBuckets {
		buckets[bound] = n.WaitBuckets[i]
	}
	return prometheus.MustNewConstHistogram(dDurWait, n.WaitBuckets[len(respsession.WaitBuckets)], n.WaitSeconds, buckets, group)
}
