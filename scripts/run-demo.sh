#!/usr/bin/env bash
# run-demo.sh is the README's run command (`make run`). It starts the fake IoT Hub on
# loopback with a registered device and module, runs the simulated temperature sensor
# module against it, and shows the messages the hub receives. It prints what any other
# client needs to connect: a device connection string and the CA file. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-.outpost/fakehub}
DEVICE=${DEVICE:-demo-device}
EDGE=${EDGE:-demo-edge}
MQTT_ADDR=${MQTT_ADDR:-127.0.0.1:8883}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8443}
mkdir -p "$DATA"

CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/fakehub ./cmd/tempsensor

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

bin/fakehub --data-dir "$DATA" --mqtt-addr "$MQTT_ADDR" --http-addr "$HTTP_ADDR" \
  --device "$DEVICE" --edge-device "$EDGE" --module "$EDGE/tempsensor" --log-events &
pids+=($!)

cs_file="$DATA/devices/$DEVICE.connection-string"
module_cs_file="$DATA/devices/$EDGE/tempsensor.connection-string"
for _ in $(seq 1 100); do [ -s "$module_cs_file" ] && break; sleep 0.1; done
if [ ! -s "$module_cs_file" ]; then
  echo "run-demo: the fake hub did not come up" >&2
  exit 1
fi

cat <<INFO

Outpost fake IoT Hub is running.
  MQTT (TLS):        $MQTT_ADDR
  Service API:       https://$HTTP_ADDR   (docs/fakehub.md)
  CA file:           $(realpath "$DATA/ca.pem")
  Device connection string ($DEVICE):
    $(cat "$cs_file")
  Service connection string: $(realpath "$DATA/service-connection-string")
  Web console:       https://$HTTP_ADDR/console/  (paste the service connection string)

The simulated temperature sensor (module $EDGE/tempsensor) now sends a reading every
second; the hub logs each message it receives ("device-to-cloud message").
Point any IoT Hub MQTT client at the hub with the device connection string and the CA file.
Ctrl-C stops everything.

INFO

EdgeHubConnectionString="$(cat "$module_cs_file")" \
EdgeModuleCACertificateFile="$(realpath "$DATA/ca.pem")" \
OUTPOST_MQTT_PORT="${MQTT_ADDR##*:}" \
MessageCount=-1 SendInterval=1s \
  bin/tempsensor &
pids+=($!)
wait -n "${pids[@]}"
