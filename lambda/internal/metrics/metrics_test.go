package metrics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEMFLine(t *testing.T) {
	var buf bytes.Buffer
	e := &Emitter{W: &buf, Stack: "prod", Now: func() time.Time { return time.UnixMilli(1700000000123) }}
	if err := e.Emit(map[string]any{"run_id": "r1"}, Metric{Name: "freeze_window_ms", Unit: "Milliseconds", Value: 812.5}, Metric{Name: "instances_ok", Unit: "Count", Value: 3}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Stack          string
		RunID          string  `json:"run_id"`
		FreezeWindowMS float64 `json:"freeze_window_ms"`
		InstancesOK    float64 `json:"instances_ok"`
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", buf.String())
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	cw := doc.AWS.CloudWatchMetrics
	if doc.AWS.Timestamp != 1700000000123 || len(cw) != 1 || cw[0].Namespace != "Quiesce" || len(cw[0].Dimensions) != 1 || cw[0].Dimensions[0][0] != "Stack" ||
		len(cw[0].Metrics) != 2 || cw[0].Metrics[0].Name != "freeze_window_ms" || cw[0].Metrics[0].Unit != "Milliseconds" {
		t.Fatalf("EMF metadata = %+v", doc.AWS)
	}
	if doc.Stack != "prod" || doc.RunID != "r1" || doc.FreezeWindowMS != 812.5 || doc.InstancesOK != 3 {
		t.Fatalf("EMF values = %+v", doc)
	}
	var nilEmitter *Emitter
	if err := nilEmitter.Emit(nil, Metric{Name: "x"}); err != nil {
		t.Fatal(err)
	}
}
