// Package realnode holds the tests that need the real node: pods, images, probes and the chart's own pods. Its
// packages run one after another (`make test-realnode` runs them with -p 1), because one machine runs one real
// node. e2e installs the published chart and plays the seeds' story on real containers; teardown checks that a
// node leaves the host as it found it, also after a killed run.
package realnode
