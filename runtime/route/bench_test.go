package route

import (
	"fmt"
	"strings"
	"testing"
)

// benchTable is a realistic 10-route table: source filters, property and body
// conditions, fan-out to modules and the cloud.
func benchTable(b *testing.B) *Table {
	b.Helper()
	texts := []string{
		"FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
		"FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
		"FROM /messages/modules/filter/outputs/* INTO $upstream",
		"FROM /messages/* WHERE as_number(temperature) > 30 INTO BrokeredEndpoint(\"/modules/alerts/inputs/hot\")",
		"FROM /messages/* WHERE $body.machine.temperature > 100 AND $body.machine.status = 'running' INTO $upstream",
		"FROM /messages/* WHERE $body.ambient.humidity < 20 OR $body.ambient.humidity > 80 INTO BrokeredEndpoint(\"/modules/hvac/inputs/humidity\")",
		"FROM /messages/modules/* WHERE starts_with($connectionDeviceId, 'line-') INTO BrokeredEndpoint(\"/modules/archive/inputs/all\")",
		"FROM /messages/* WHERE is_defined($body.readings[3].value) AND level = 'critical' INTO $upstream",
		"FROM /twinChangeNotifications INTO $upstream",
		"FROM /messages/* WHERE lower($body.site) = 'plant-7' AND length(concat($body.site, '-', level)) > 5 INTO BrokeredEndpoint(\"/modules/site7/inputs/in\")",
	}
	specs := make([]Spec, len(texts))
	for i, text := range texts {
		specs[i] = Spec{Name: fmt.Sprintf("route%02d", i), Text: text, Priority: DefaultPriority}
	}
	specs[3].Priority = 0
	tbl, err := Compile(specs)
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}

// benchMessage is a ~1 KB JSON telemetry message from a module output.
func benchMessage(b *testing.B) *Message {
	b.Helper()
	var readings []string
	for i := range 12 {
		readings = append(readings, fmt.Sprintf(`{"sensor":"s%02d","value":%d.25,"unit":"C","ts":"2026-01-02T03:04:%02dZ"}`, i, 20+i, i))
	}
	body := `{"machine":{"temperature":104.5,"pressure":1.2,"status":"running"},"ambient":{"temperature":21.5,"humidity":85},` +
		`"site":"Plant-7","readings":[` + strings.Join(readings, ",") + `]}`
	if len(body) < 900 || len(body) > 1200 {
		b.Fatalf("body is %d bytes, want about 1 KB", len(body))
	}
	return &Message{
		Source: ModuleSource("tempSensor", "temperatureOutput"),
		Body:   []byte(body),
		App:    map[string]string{"temperature": "35.5", "level": "critical"},
		System: map[string]string{
			"contentType": "application/json", "contentEncoding": "utf-8",
			"connectionDeviceId": "line-4", "connectionModuleId": "tempSensor", "outputName": "temperatureOutput",
			"messageId": "abc-123",
		},
	}
}

func BenchmarkEvaluate(b *testing.B) {
	tbl := benchTable(b)
	m := benchMessage(b)
	if got := len(tbl.Evaluate(m)); got != 6 {
		b.Fatalf("Evaluate found %d targets, want 6", got)
	}
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		tbl.Evaluate(m)
	}
}

// BenchmarkEvaluateNoBody is the same table on a message without JSON content type:
// the cost of routing when no body is decoded.
func BenchmarkEvaluateNoBody(b *testing.B) {
	tbl := benchTable(b)
	m := benchMessage(b)
	m.System = map[string]string{"connectionDeviceId": "line-4", "connectionModuleId": "tempSensor"}
	b.ReportAllocs()
	for b.Loop() {
		tbl.Evaluate(m)
	}
}
