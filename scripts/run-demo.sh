#!/usr/bin/env bash
# run-demo.sh is the README's run command (`make run`): it starts the fake IoT Hub on
# loopback with a registered demo device and prints what a client needs to connect:
# the device's connection string and the CA file to trust. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-.outpost/fakehub}
DEVICE=${DEVICE:-demo-device}
MQTT_ADDR=${MQTT_ADDR:-127.0.0.1:8883}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8443}
mkdir -p "$DATA"

[ -x bin/fakehub ] || CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/fakehub

bin/fakehub --data-dir "$DATA" --mqtt-addr "$MQTT_ADDR" --http-addr "$HTTP_ADDR" \
  --device "$DEVICE" --edge-device demo-edge &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

cs_file="$DATA/devices/$DEVICE.connection-string"
for _ in $(seq 1 100); do [ -s "$cs_file" ] && break; sleep 0.1; done
if [ ! -s "$cs_file" ]; then
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

Point any IoT Hub MQTT client at it with the connection string and the CA file.
Captured device-to-cloud messages: GET https://$HTTP_ADDR/fake/events (see docs/fakehub.md).
Ctrl-C stops the hub.
INFO
wait $pid
