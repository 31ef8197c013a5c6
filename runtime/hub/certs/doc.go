// Package certs keeps the edge hub's TLS identity: a local edge CA, generated once, and a
// server certificate it issues for the names clients dial.
//
// # Files
//
// [LoadOrCreate] works in one directory (the hub's data dir):
//
//	edge-ca.pem         the edge CA certificate (0644); hand it to modules and leaf devices
//	                    (EdgeModuleCACertificateFile) so they trust the hub
//	edge-ca-key.pem     the CA's private key (0600)
//	server.pem          the server certificate, issued by the edge CA (0644)
//	server-key.pem      the server's private key (0600)
//
// Files are written atomically (temporary file, fsync, rename), so a crash never leaves half
// a key behind.
//
// # Renewal
//
// The CA is kept as long as it loads and is valid, because every client that trusts it would
// otherwise need the new one; it is only regenerated when a file is missing or unreadable,
// the key does not match, or it has expired (validity 10 years). The server certificate is
// reissued whenever it would not be accepted: it is missing or unreadable, issued by another
// CA, expired or expiring within [RenewBefore], or its names differ from the ones asked for.
//
// # Names
//
// [Names] builds the subject alternative names the hub needs: the configured gateway host
// name, "localhost", "127.0.0.1" and "::1". IP literals become IP SANs, the rest DNS SANs.
//
// Keys are ECDSA P-256. The clock is passed in (now), so renewal is testable.
package certs
