package main

import (
	"context"
	"log/slog"

	"github.com/outpost-edge/outpost/runtime/certs"
)

// certOptions are the options of the certificates the agent keeps in
// --certs-dir: the edge CA and the edge hub's server certificate for the
// gateway host name, with the configured lifetimes (certs' defaults for
// zeros).
func certOptions(c config, logger *slog.Logger) certs.Options {
	return certs.Options{
		Dir:            c.certsDir,
		Names:          certs.Names(c.gatewayHostName),
		CALifetime:     c.caLifetime,
		ServerLifetime: c.serverLifetime,
		RenewBefore:    c.renewBefore,
		Logger:         logger,
	}
}

// runCertRenewal keeps the certificates of --certs-dir valid until ctx
// ends: a first pass now (creating or renewing what is missing or due),
// then a renewal RenewBefore ahead of each expiry, as aziot-certd renews
// the edge CA. A failure is logged, not fatal: the modules do not depend on
// the agent's certificates to keep running.
func runCertRenewal(ctx context.Context, c config, logger *slog.Logger) {
	m, err := certs.New(certOptions(c, logger))
	if err != nil {
		logger.Error("cannot keep the edge certificates; they will not be renewed", "dir", c.certsDir, "err", err)
		return
	}
	logger.Info("edge certificates current", "dir", c.certsDir, "server_expires", m.Current().NotAfter, "renew_at", m.Current().RenewAt)
	m.Run(ctx)
}
