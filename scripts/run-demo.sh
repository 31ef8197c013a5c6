#!/usr/bin/env bash
# run-demo.sh is the README's run command (`make run`): a whole edge device on this machine.
#
#   1. builds the binaries it needs into bin/ (and the message viewer scripts/demo/tail);
#   2. starts the fake IoT Hub (cmd/fakehub) on loopback, with an IoT Edge device "demo-edge"
#      (and a plain device "demo-device" for your own clients);
#   3. sets the edge device up with `edgectl setup` in .outpost/device and starts its runtime
#      with `edgectl start` (watchdog + edge agent);
#   4. deploys scripts/demo/deployment.json with `edgectl deploy`: edgeHub, the simulated
#      temperature sensor (a reading every second) and the filter (alerts above 24 °C),
#      routed tempSensor -> filter -> $upstream, and tempSensor -> $upstream;
#   5. shows `edgectl list`, then every message as it arrives at the hub, and every 30 s the
#      modules' status the agent reports to the hub (what the web console shows).
#
# Ctrl-C runs `edgectl stop` (the modules stop) and stops the fake hub; everything stays in
# .outpost for the next run.
#
# Environment:
#   RUNTIME=process|docker  how modules run (default process; docker builds the images with
#                           scripts/images.sh, which installs Docker Engine when absent)
#   OUTPOST_DIR             where the hub's and the device's data go (default .outpost)
#   MQTT_ADDR, HTTP_ADDR    the fake hub's listeners (default 127.0.0.1:8883, 127.0.0.1:8443)
#   EDGEHUB_PORT            the edge hub's MQTT/TLS port on 127.0.0.1 (default 8884)
#   EDGEHUB_METRICS_ADDR    the edge hub's Prometheus metrics (default 127.0.0.1:9600)
#   DEMO_EXIT_AFTER=N       non-interactive: stop and exit 0 once N readings from tempSensor
#                           and N alerts from filter arrived through the edge hub, exit 1 if
#                           that takes longer than DEMO_TIMEOUT (default 2m)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNTIME=${RUNTIME:-process}
OUT=${OUTPOST_DIR:-.outpost}
EDGE=${EDGE:-demo-edge}
DEVICE=${DEVICE:-demo-device}
MQTT_ADDR=${MQTT_ADDR:-127.0.0.1:8883}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8443}
EDGEHUB_PORT=${EDGEHUB_PORT:-8884}
EDGEHUB_METRICS_ADDR=${EDGEHUB_METRICS_ADDR:-127.0.0.1:9600}
DEMO_EXIT_AFTER=${DEMO_EXIT_AFTER:-0}
DEMO_TIMEOUT=${DEMO_TIMEOUT:-2m}
# The IoT Hub host name and the edge device's host name: both this machine.
EDGE_HOSTNAME=localhost

say() { printf '\n== %s\n' "$*"; }
die() { printf 'run-demo: %s\n' "$*" >&2; exit 1; }

case "$RUNTIME" in
process | docker) ;;
*) die "RUNTIME=$RUNTIME: want process or docker" ;;
esac
command -v go >/dev/null || die "Go is needed to build the demo (README: Requirements)"

# A port already taken would only show later, as a module that keeps restarting: check now.
in_use() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
leftover="is an earlier demo still running? bin/edgectl --data-dir $OUT/device stop stops its device"
for v in MQTT_ADDR HTTP_ADDR; do
  port=${!v##*:}
  if in_use "${!v}"; then die "${!v} is in use: set $v to a free address, e.g. $v=127.0.0.1:$((port < 10000 ? port + 10000 : port + 1)) ($leftover)"; fi
done
if in_use "127.0.0.1:$EDGEHUB_PORT"; then die "port $EDGEHUB_PORT is in use: set EDGEHUB_PORT to a free port ($leftover)"; fi
metrics="http://$EDGEHUB_METRICS_ADDR/metrics"
if in_use "$EDGEHUB_METRICS_ADDR"; then # not worth stopping for: take any free port
  metrics="on a random port ($EDGEHUB_METRICS_ADDR is in use; edgeHub logs its metrics_address)"
  EDGEHUB_METRICS_ADDR=127.0.0.1:0
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: the paths go into edge.json and the deployment
HUB_DATA=$OUT/fakehub
DEV_DATA=$OUT/device
mkdir -p "$HUB_DATA" "$DEV_DATA" "$OUT/bin"

say "building"
CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/fakehub ./cmd/edgectl ./cmd/edgeagent ./cmd/edgehub ./cmd/tempsensor ./cmd/filter
CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/demo-tail" ./scripts/demo/tail
if [ "$RUNTIME" = docker ]; then
  scripts/images.sh edgeagent edgehub tempsensor filter
fi

edgectl=("$ROOT/bin/edgectl" --data-dir "$DEV_DATA")
hub_pid=
tail_pid=
device_started=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; fi
  if [ -n "$device_started" ]; then
    say "stopping the edge device (edgectl stop)"
    "${edgectl[@]}" stop || true
  fi
  if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  printf '\nData kept in %s for the next run.\n' "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting the fake IoT Hub (log: $OUT/fakehub.log)"
bin/fakehub --data-dir "$HUB_DATA" --hostname "$EDGE_HOSTNAME" --mqtt-addr "$MQTT_ADDR" --http-addr "$HTTP_ADDR" \
  --device "$DEVICE" --edge-device "$EDGE" >"$OUT/fakehub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 1 100); do
  grep -q 'msg="fakehub ready"' "$OUT/fakehub.log" && break
  kill -0 "$hub_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'msg="fakehub ready"' "$OUT/fakehub.log"; then
  tail -n 20 "$OUT/fakehub.log" >&2
  die "the fake hub did not come up (is $MQTT_ADDR or $HTTP_ADDR in use? set MQTT_ADDR/HTTP_ADDR)"
fi
HUB_MQTT_PORT=${MQTT_ADDR##*:}
HUB_URL="https://$EDGE_HOSTNAME:${HTTP_ADDR##*:}"
HUB_CA=$HUB_DATA/ca.pem
SERVICE_CS=$HUB_DATA/service-connection-string

say "setting up the edge device $EDGE (edgectl setup, runtime $RUNTIME)"
setup_args=(--connection-string-file "$HUB_DATA/devices/$EDGE.connection-string" --runtime "$RUNTIME"
  --edge-hostname "$EDGE_HOSTNAME" --ca-file "$HUB_CA" --service-url "$HUB_URL" --mqtt-port "$HUB_MQTT_PORT" --force)
if [ "$RUNTIME" = process ]; then
  # Registry-style images resolve to executables here: outpost/edgehub:dev is bin/edgehub.
  setup_args+=(--image-dir "$ROOT/bin")
else
  # The agent's container reaches the fake hub on the host's loopback.
  setup_args+=(--agent-image outpost/edgeagent:dev --agent-network host)
fi
"${edgectl[@]}" setup "${setup_args[@]}"

say "starting the edge runtime (edgectl start)"
device_started=1
"${edgectl[@]}" start

# The deployment, with this run's paths and ports. The agent gives the rest to the modules
# from edge.json: edgeHub gets the hub's host name, port (when not 8883) and CA, the edge
# device's host name and the certificates in $DEV_DATA/certs; tempSensor and filter get
# edgeHub's port, read from EDGEHUB_TLS_ADDR, and the edge CA.
if [ "$RUNTIME" = process ]; then
  edgehub_create='' module_create=''
else
  # Host networking: the modules reach edgeHub, and edgeHub the fake hub, on loopback; the
  # device's data directory and the fake hub's (its CA) are mounted where the paths in the
  # deployment and those the agent passes on point: the agent mounts nothing itself.
  # (JSON strings inside a JSON string: the quotes are escaped.)
  host='\"NetworkingConfig\":{\"EndpointsConfig\":{\"host\":{}}}'
  edgehub_create='{\"HostConfig\":{\"NetworkMode\":\"host\",\"Binds\":[\"'$DEV_DATA:$DEV_DATA'\",\"'$HUB_DATA:$HUB_DATA:ro'\"]},'$host'}'
  module_create='{\"HostConfig\":{\"NetworkMode\":\"host\",\"Binds\":[\"'$DEV_DATA/certs:$DEV_DATA/certs:ro'\"]},'$host'}'
fi
manifest=$OUT/deployment.json
sed_args=()
subst() { # subst NAME VALUE: replace @NAME@ in the template by VALUE, taken literally
  sed_args+=(-e "s|@$1@|$(printf '%s' "$2" | sed -e 's/[\\&|]/\\&/g')|g")
}
subst EDGEHUB_DATA_DIR "$DEV_DATA/edgehub"
subst EDGEHUB_TLS_ADDR "127.0.0.1:$EDGEHUB_PORT"
subst EDGEHUB_METRICS_ADDR "$EDGEHUB_METRICS_ADDR"
subst EDGEHUB_CREATE_OPTIONS "$edgehub_create"
subst MODULE_CREATE_OPTIONS "$module_create"
sed "${sed_args[@]}" scripts/demo/deployment.json >"$manifest"

say "deploying scripts/demo/deployment.json (edgectl deploy)"
"${edgectl[@]}" deploy "$manifest" --service-connection-string-file "$SERVICE_CS" --timeout 2m

say "modules (edgectl list)"
"${edgectl[@]}" list

rel() { # a path as short as it gets: relative to the repository when inside it
  case "$1" in "$ROOT"/*) echo "${1#"$ROOT"/}" ;; *) echo "$1" ;; esac
}
cat <<INFO

Outpost demo: the edge device $EDGE runs edgeHub, tempSensor and filter ($RUNTIME runtime).
  Web console:     $HUB_URL/console/  (paste the content of $(rel "$SERVICE_CS"))
  Fake IoT Hub:    MQTT $EDGE_HOSTNAME:$HUB_MQTT_PORT, service API $HUB_URL, CA $(rel "$HUB_CA")
  Edge hub:        MQTT $EDGE_HOSTNAME:$EDGEHUB_PORT, CA $(rel "$DEV_DATA/certs/edge-ca.pem"), metrics $metrics
  Manage it:       bin/edgectl --data-dir $(rel "$DEV_DATA") list   (or status, check, logs filter -f, ...)
  A plain device ($DEVICE) for your own clients, with CA $(rel "$HUB_CA"):
    $(cat "$HUB_DATA/devices/$DEVICE.connection-string")

Messages arriving at the hub (a reading every second; filter alerts above 24 °C); Ctrl-C stops.

INFO

tail_args=(--url "$HUB_URL" --ca-file "$HUB_CA" --service-connection-string-file "$SERVICE_CS" --device "$EDGE")
if [ "$DEMO_EXIT_AFTER" != 0 ]; then
  tail_args+=(--exit-after "$DEMO_EXIT_AFTER" --timeout "$DEMO_TIMEOUT" --status-every 5s)
fi
"$OUT/bin/demo-tail" "${tail_args[@]}" &
tail_pid=$!
status=0
wait "$tail_pid" || status=$?
tail_pid=
if [ "$DEMO_EXIT_AFTER" != 0 ]; then
  say "modules (edgectl list)"
  "${edgectl[@]}" list || true
fi
exit "$status"
