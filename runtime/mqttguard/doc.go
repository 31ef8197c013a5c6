// Package mqttguard bounds what an MQTT connection can cost the broker before it has
// authenticated.
//
// mochi reads a packet's fixed header, checks the announced remaining length against the
// broker's maximum packet size, and allocates the whole buffer before the body arrives. The
// first packet is the CONNECT, so four bytes from a socket without credentials pin a
// maximum-size buffer until the connect deadline. A Gate wraps each accepted connection
// (after TLS, so it sees MQTT bytes) and checks the first fixed header itself: the packet
// must be a CONNECT announcing at most MaxConnectLength bytes, or the connection is closed
// before mochi reads further. It also caps the number of connections whose CONNECT has not
// been read in full (the TLS handshake included); sockets beyond the cap are refused at once.
//
//	g := mqttguard.NewGate(mqttguard.DefaultMaxPending, 16<<10)
//	c, ok := g.Wrap(raw) // ok false: too many pending connections; close raw
package mqttguard
