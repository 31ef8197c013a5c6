// Package identities is the edge hub's cache of the identities it may authenticate locally:
// the edge device's modules and the leaf devices in its scope, with their symmetric keys.
// It implements hub.Identities, so the hub can verify a client's SAS token without asking
// IoT Hub, including while the cloud is unreachable (edge-runtime-behaviour.md F.7).
//
// # Basics
//
//	c, err := identities.Open(identities.Options{Path: filepath.Join(dataDir, "identities.db")})
//	defer c.Close()
//	err = c.Put(ctx, identities.Record{DeviceID: "edge1", ModuleID: "filter", Keys: keys})
//	keys, err := c.Keys(ctx, sas.Identity{DeviceID: "edge1", ModuleID: "filter"})
//
// An empty Path keeps the cache in memory only (tests, or a hub without a data dir). With a
// Path, every Put and Delete is committed to the bbolt file before it returns, and Open
// loads the whole file into memory: lookups never touch the disk.
//
// Ids are matched exactly (case-sensitive), as the IoT Hub registry does.
//
// # Changes
//
// Changes returns a channel that receives a value (coalesced: at most one is pending) after
// any Put or Delete. The hub watches it and re-checks every connected client, closing the
// connections whose identity was removed or disabled, or whose token no longer verifies
// with the new keys.
//
// # File layout (schema version 1)
//
//	meta/
//	    version   -> "1"
//	identities/
//	    "{d}"     -> JSON Record of a device
//	    "{d}/{m}" -> JSON Record of a module
//
// Device and module ids cannot contain '/', so the key is unambiguous. The file is created
// 0600.
//
// # Caveats
//
//   - Keys are stored in clear in the file (edgeHub encrypts its identity cache); the file's
//     permissions are the only protection for now.
//   - Open refuses a file whose schema version it does not know (ErrVersion); there are no
//     migrations yet because there is only one version.
package identities
