// Package mqttlog adapts a slog handler for the logs of the mochi MQTT broker, which both
// the edge hub and the fake hub embed: it demotes mochi's routine lines to Debug and drops
// the packet dumps that may carry credentials (a second CONNECT's password, a SAS token).
//
//	mqtt.New(&mqtt.Options{Logger: slog.New(mqttlog.Handler{Handler: h})})
package mqttlog
