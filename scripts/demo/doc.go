// Package demo holds the demo deployment and its end-to-end test: the README's run command
// (`make run`, scripts/run-demo.sh) starts the fake IoT Hub, sets up and starts an edge
// device with edgectl, deploys deployment.json to it (edgeHub, the simulated temperature
// sensor and the filter, routed to $upstream) and shows the messages arriving at the hub and
// the modules' status. demo_test.go runs that script non-interactively and checks what it
// shows. The tail subdirectory is the small program the script prints the messages with.
package demo
