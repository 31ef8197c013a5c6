package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
)

// twinsFile is the twin cache in the data directory (package twincache): the clients'
// twins, their pending reported properties, and the last good $edgeHub configuration.
const twinsFile = "twins.db"

// openTwins opens the twin cache and returns the store cap to open the store with: the
// storeLimits.maxSizeBytes of the last $edgeHub configuration applied, when it sets one
// (the deployment decides, as for edgeHub), else --store-max-bytes.
func openTwins(c config, logger *slog.Logger) (*twincache.Cache, int64, error) {
	twins, err := twincache.Open(twincache.Options{Path: filepath.Join(c.dataDir, twinsFile)})
	if err != nil {
		return nil, 0, fmt.Errorf("twin cache: %w", err)
	}
	maxBytes := c.storeMaxBytes
	cached, err := hub.CachedConfig(twins)
	switch {
	case err != nil:
		// The hub reports the same problem in its twin; the flag's cap stands.
		logger.Warn("cached $edgeHub configuration unreadable; --store-max-bytes applies", "err", err)
	case cached != nil && cached.StoreAndForward.MaxSizeBytes > 0:
		maxBytes = cached.StoreAndForward.MaxSizeBytes
		if maxBytes != c.storeMaxBytes {
			logger.Info("store cap from the cached $edgeHub configuration (storeLimits.maxSizeBytes)", "max_bytes", maxBytes)
		}
	}
	return twins, maxBytes, nil
}
