// Package fakehub is a local Azure IoT Hub for tests, demos and containers: the MQTT device
// endpoint that the official device SDKs connect to with nothing but a connection string and
// a CA file, the identity registry, device and module twins, device-to-cloud capture,
// cloud-to-device messages, direct methods, the service REST API and test controls
// (docs: iothub-mqtt-protocol.md, design.md section 7).
//
// # Basics
//
// The zero Server is usable. Start fills in defaults (host name "localhost", TLS listeners
// on 127.0.0.1 random ports, a discarding logger, time.Now), opens the registry in DataDir
// (a temporary directory removed by Close when DataDir is ""), and returns once every
// listener serves:
//
//	s := &fakehub.Server{DataDir: "/var/lib/fakehub", PlainHTTPAddr: "127.0.0.1:8080"}
//	if err := s.Start(ctx); err != nil { ... }
//	defer s.Close()
//	d, _ := s.PutDevice(fakehub.Device{DeviceID: "dev1"}, "")
//	cs, _ := s.DeviceConnectionString("dev1") // give this and s.CAFile() to a device SDK
//
// Tests use package fakehubtest. Run(ctx) is Start, wait, Close, for cmd/fakehub.
//
// # Lifecycle
//
//	          Start                         Close
//	stopped --------> running (serving) ------------> stopped (may Start again)
//	   ^                 | error during Start              |
//	   +-----------------+ (everything released)           +-- temp DataDir removed
//
// # Files in DataDir
//
//	ca.pem, ca-key.pem          ECDSA P-256 CA, 10 years; created once, kept while valid
//	server.pem, server-key.pem  server certificate for Hostname, "localhost", "127.0.0.1",
//	                            "::1", 1 year; reissued when expired, when the names differ
//	                            or when the CA changed
//	service-connection-string   HostName=...;SharedAccessKeyName=iothubowner;SharedAccessKey=...
//	registry.db                 bbolt, below
//
// # Persistence
//
// registry.db holds the registry and the twins; every change is one bbolt transaction,
// written before the in-memory copy changes:
//
//	registry.db
//	├── meta
//	│   └── version            "1" (schemaVersion; store.go's migrations upgrade older files)
//	├── policies
//	│   └── {name}             {"primaryKey","secondaryKey"}  iothubowner, service,
//	│                          registryRead, registryReadWrite, device (created on first start)
//	├── devices
//	│   └── {deviceId}         Device JSON (connection fields are reset on load)
//	├── modules
//	│   └── {deviceId}/{moduleId}   Module JSON
//	├── twins
//	│   └── {deviceId} | {deviceId}/{moduleId}   {"twin": twin.Twin JSON, "modelId": "..."}
//	└── configurations
//	    └── {deviceId}/{moduleId}   desired document from ApplyConfigurationContent waiting
//	                                for its module identity
//
// Not persisted, by design: connection state and lastActivityTime (every identity is
// Disconnected after a restart), MQTT sessions, the C2D queues, pending method calls and the
// captured events.
//
// # MQTT device endpoint
//
// mochi-mqtt with one hook (mqtt_hook.go). The hub sends its own packets (twin answers,
// desired notifications, method requests, C2D) directly on the client's connection through
// a bounded per-connection queue, not through mochi's topic routing: the $iothub topics do
// not carry the identity, so routing would hand one device's twin answer to every client
// subscribed to $iothub/twin/res/#. Behaviour, with the protocol notes' sections:
//
//   - MQTT 3.1.1 only: protocol level 3 or 5 gets CONNACK 0x01 (10).
//   - CONNECT (1.2-1.8): client id "{d}" or "{d}/{m}" equal to the username's identity;
//     username per iothub.ParseUsername, host segment not checked; password = SAS token
//     (device token valid for its modules, primary then secondary key, 5 minutes of skew,
//     audience host = Hostname), or a token of a policy with DeviceConnect; X.509 identities
//     present a client certificate instead (selfSigned: SHA-1 or SHA-256 thumbprint;
//     certificateAuthority: chain to the hub's own CA, common name = client id). Every
//     refusal is CONNACK 0x05 then close, including a disabled device (the notes' 0x03 for
//     disabled devices is UNCONFIRMED; 0x05 is what edgeHub sends and what the SDKs report as
//     an authentication failure).
//   - One connection per identity: a newer CONNECT closes the older connection (no
//     DISCONNECT packet, which 3.1.1 servers never send) (1.9).
//   - Sessions: CleanSession=0 sessions (subscriptions) outlive the connection for 24 h and
//     the CONNACK says session present, as IoT Hub does; CleanSession=1 starts empty.
//     Deleting or disabling an identity ends its session.
//   - PUBLISH (2, 5, 6, 10): only telemetry on the identity's own events topic, twin GET,
//     reported PATCH and method responses. Anything else closes the connection: another
//     identity's topic, any other topic, a malformed property bag, a $rid that could not be
//     echoed, QoS 2, and telemetry over 256 KB (iothub.Message.Size; nothing is captured).
//     RETAIN becomes the application property mqtt-retain=true and nothing is stored.
//   - SUBSCRIBE (0, 11): only the dialect's filters for the identity itself, at most 5
//     distinct filters per session; refused filters get 0x80 in the SUBACK; QoS 2 is
//     granted as 1.
//   - Telemetry is captured with IoT Hub's stamps: iothub-connection-device-id,
//     -module-id, -auth-generation-id, -auth-method, iothub-enqueuedtime,
//     iothub-message-source=Telemetry, dt-dataschema (model-id from the username), and the
//     client's system properties under their service names (message-id, correlation-id,
//     user-id, content-type, content-encoding, dt-subject, absolute-expiry-time,
//     iothub-creation-time-utc, iothub-interface-id; unknown "$." keys keep their wire name,
//     $.cdid/$.cmid from clients are dropped). A will message on the identity's events topic
//     is captured with the application property iothub-MessageType=Will.
//   - Twins (5): GET answers 200 with twin.Twin.DeviceJSON (body ignored); reported PATCH
//     answers 204 with &$version=N, or 400 with {"errorCode":400006|400004,"message":...};
//     desired changes are pushed to the identity's connection only if it subscribed. Twin
//     answers and notifications go out at QoS 0 (IoT Hub's QoS is UNCONFIRMED; QoS 0 is
//     valid for every subscription).
//   - Methods (6): requests at QoS 0 on $iothub/methods/POST/{name}/?$rid={n}.
//   - C2D (3): delivered at the granted QoS on devices/{d}/messages/devicebound/{bag},
//     completed by PUBACK, delivered again on a later connection if not acknowledged.
//   - Keep-alive: mochi (1.5 x keep-alive); CONNECT must arrive within a minute of accept.
//
// # Edge multiplexing extension
//
// The connection of an IoT Edge device's $edgeHub module may act on behalf of the identities
// in the edge device's scope over the "$edgehub/..." topics of runtime/iothub's obo.go: on-
// behalf-of authentication, identity refresh, attach/detach, twins, methods, telemetry and C2D
// for every local client over one connection. obo.go tells the fake's rules; docs/upstream.md
// the protocol. The MQTT files call into it through small hooks.
//
// # Events
//
// Captured D2C messages live in an in-memory ring of the last 100,000 events with
// contiguous Seq numbers from 1. Events and WaitEvents read it; SubscribeEvents streams new
// ones and never blocks the hub: a subscriber whose buffer is full loses events and the loss
// is counted (DroppedEvents).
//
// # Test controls
//
// CutNetwork, RestoreNetwork, SetRefuseAuth, SetDelay, SetThrottle (faults.go) act on the
// MQTT endpoint only; the HTTP service API is the operator's side and keeps working.
//
// # Locking
//
// Server.mu guards the registry, twins and connection state. Lock order: runMu (Start and
// Close) before mu; mu before mochi's internal locks (client subscriptions and inflight
// maps, the clients map). mu is never held while writing to a connection or calling a mochi
// method that takes the client's own lock (Stop, NextPacketID, WritePacket), because those
// can block on the network; such work is collected in an effects value and done after
// unlocking. The event log has its own lock and never takes mu.
package fakehub
