// Package certs keeps a local TLS identity on disk: a CA generated once, and a server
// certificate it issues for the host names clients dial. The edge hub (cmd/edgehub) and
// the fake IoT Hub (package fakehub) both use it, each with its own file names.
//
// # Basics
//
//	m, err := certs.New(certs.Options{Dir: dataDir, Names: certs.Names(gatewayHostName)})
//	srv := hub.Options{TLS: m.TLSConfig(), ...} // hands out the current certificate
//	go m.Run(ctx)                               // renews it in the background when due
//	caPEM := m.Current().CAPEM                  // what clients must trust
//
// [LoadOrCreate] does one pass of the same work without a [Manager]; [Inspect] reads a
// certificate file for reports (edgectl check).
//
// # Files
//
// Four files in Options.Dir (the names are options; the defaults are the edge hub's):
//
//	edge-ca.pem       CAFile     the CA certificate, PEM (0644); hand it to clients
//	                             (EdgeModuleCACertificateFile) so they trust the server
//	edge-ca-key.pem   CAKeyFile  the CA's private key, PEM "EC PRIVATE KEY" (0600)
//	server.pem        CertFile   the server certificate alone, PEM (0644)
//	server-key.pem    KeyFile    the server's private key, PEM "EC PRIVATE KEY" (0600)
//
// Every file is written atomically (temporary file, fsync, rename), key before
// certificate: a crash in between leaves a certificate that does not match its key, which
// the next pass detects and repairs. Keys are ECDSA P-256, serial numbers random. Handshakes
// send the server certificate followed by the CA certificate.
//
// # Renewal rules
//
// Each pass ([LoadOrCreate], [Manager.Renew], and [Manager.Run] when due) reads the files
// and decides at Options.Now:
//
//  1. The CA is kept while it loads (certificate and key match, ECDSA, a CA). When it is due
//     ([NeedsRenewal] without names: not yet valid, expired, or expiring within
//     RenewBefore) its certificate is signed again with the SAME key and subject, so clients
//     that still trust the old CA certificate keep accepting server certificates until the
//     old one expires. A CA that does not load (a file missing or not parsing, key lost or
//     not matching, not ECDSA, not a CA) is replaced by a new key and certificate, which
//     every client must be given. A file that exists but cannot be read (permissions, I/O)
//     is an error, never a reason to replace anything. Either way a client that loaded the
//     CA file once and keeps its contents stops trusting the server when the certificate it
//     loaded expires (or at once, for a new key): long-running clients must read the CA file
//     again when they reconnect (cmd/edgehub's TestRenewal_ClientsKeepWorking shows both).
//  2. The server certificate is issued again, with a new key, when it does not load, the CA
//     was created or renewed in this pass, it was not signed by the CA, or [NeedsRenewal]
//     says so: not yet valid, expiring within RenewBefore, or issued for other names.
//  3. A server certificate never outlives its CA (NotAfter is capped at the CA's).
//
// Bundle.RenewAt is when the next pass will change something: RenewBefore ahead of the
// earlier expiry of the two certificates.
//
// # Manager
//
//	New --> serving Current(); Run(ctx) waits for RenewAt, renews, swaps --> ctx done --> Run returns
//
// A renewal swaps the certificate that [Manager.GetCertificate] gives to new handshakes;
// listeners keep running and established connections keep the certificate they were made
// with, so clients only notice when they reconnect. Run re-checks at least hourly (the wall
// clock may jump) and logs a failed renewal and retries it within a minute, while the
// current certificate keeps serving. One Manager per directory: two processes renewing the
// same files are not coordinated.
//
// # Lifetimes
//
// By default a CA lasts 10 years, a server certificate 1 year, and either is renewed 30
// days before it expires. All three are options, so tests can use minutes. New
// certificates are backdated one hour (NotBefore) for clients whose clock is behind.
package certs
