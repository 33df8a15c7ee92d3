// Package metrics writes CloudWatch Embedded Metric Format lines: one JSON
// object per line on stdout, which Lambda ships to CloudWatch Logs and
// CloudWatch turns into metrics without any API call.
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Namespace of every metric.
const Namespace = "Quiesce"

// Metric is one value with its unit.
type Metric struct {
	Name  string
	Unit  string // Milliseconds, Count
	Value float64
}

// Emitter writes EMF lines; safe for concurrent use.
type Emitter struct {
	W     io.Writer
	Stack string
	Now   func() time.Time
	mu    sync.Mutex
}

// Emit writes one EMF line with the Stack dimension and extra properties
// (not dimensions, so per-instance values don't multiply metric cardinality).
func (e *Emitter) Emit(props map[string]any, ms ...Metric) error {
	if e == nil || e.W == nil || len(ms) == 0 {
		return nil
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	defs := make([]map[string]string, 0, len(ms))
	doc := map[string]any{}
	for k, v := range props {
		doc[k] = v
	}
	for _, m := range ms {
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": m.Unit})
		doc[m.Name] = m.Value
	}
	doc["Stack"] = e.Stack
	doc["_aws"] = map[string]any{
		"Timestamp": now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  Namespace,
			"Dimensions": [][]string{{"Stack"}},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.W.Write(append(b, '\n'))
	return err
}
