// Package twincache is the edge hub's on-disk memory of twins: for each local identity the
// last twin it knows (IoT Hub's, plus the reported patches the client sent since), what the
// client last received of its desired properties, and the reported patches not yet
// accepted by IoT Hub. It lets the hub answer twin GETs while the cloud is unreachable,
// acknowledge reported patches at once and deliver them later, in order, and send a client
// exactly the desired changes it missed (edge-runtime-behaviour.md F.6). It also keeps a few
// small named values for the hub (the last good $edgeHub configuration).
//
// # Basics
//
//	c, err := twincache.Open(twincache.Options{Path: filepath.Join(dataDir, "twins.db")})
//	defer c.Close()
//	v, err := c.AddReported(id, patch, now) // validate, merge into the cached twin, queue
//	ps, err := c.PendingReported(id)        // oldest first; send each, then
//	ok, err := c.AckReported(id, ps[0].Seq, ps[0].Rev)
//	err = c.Update(id, func(e *twincache.Entry) error { e.Twin = fresh; return nil })
//
// Every write is one bbolt transaction, committed (fsynced) before the call returns.
//
// # Pending reported patches
//
// A client's reported patches queue per identity, oldest first. A new patch is composed
// into the newest queued one when the result is exactly equivalent (Compose): applying the
// composed patch gives the same document as applying the two in turn, nulls included (a
// null still deletes). When it is not (the new patch writes an object where the queued one
// wrote a scalar, an array or a null), the patch is queued on its own, so IoT Hub ends up
// with exactly what the client asked for. A queued patch may grow while it is being sent:
// each composition bumps its Rev, and AckReported removes it only if its Rev is still the
// one that was sent. Re-sending a composed patch after its first part was applied is
// harmless, because applying a merge patch twice is the same as applying it once.
//
// # File layout (schema version 1)
//
//	meta/
//	    version    -> "1"
//	twins/
//	    "{d}" | "{d}/{m}" -> JSON entryRecord {"twin": twin.Twin JSON, "synced": RFC 3339,
//	                         "seen": {"desired": {...}, "version": n}}
//	reported/
//	    "{d}" | "{d}/{m}"/               one bucket per identity with pending patches
//	        {seq u64 big-endian} -> JSON {"rev": n, "patch": {...}}
//	values/
//	    {name}     -> bytes (the hub's own small records)
//
// Device and module ids cannot contain '/', so the keys are unambiguous. Numbers are kept
// as JSON text (json.Number), so integers round-trip exactly. The file is created 0600.
//
// # Caveats
//
//   - Twins are stored in clear (edgeHub can encrypt its twin store); the file's permissions
//     are the only protection.
//   - Open refuses a file whose schema version it does not know (ErrVersion); there are no
//     migrations yet because there is only one version.
//   - Nothing is ever evicted: an identity's entry stays until Delete. A hub serves at most
//     a few hundred identities, each twin at most 64 KB.
package twincache
