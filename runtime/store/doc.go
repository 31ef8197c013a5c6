// Package store is the edge hub's durable message store: one bbolt file holding a queue
// per endpoint and priority, message bodies stored once with a reference count, a
// checkpoint per queue, TTL expiry and a byte cap, all enforced on disk. Appends from many
// clients are group-committed, so durability does not cost one fsync per message.
//
// The store is what makes "nothing acknowledged is ever lost" true: Append returns nil only
// after the message is fsynced in every queue it was routed to (AppendAsync calls its done
// callback with nil only then), so the hub sends PUBACK after that, and checkpoints a queue
// only after the receiver acknowledged.
//
// # Basics
//
// A queue is named by its endpoint id. Each (queue, priority) pair is a lane: an
// append-only sequence numbered from 1, read in order and acknowledged in order. Append
// stores a body once and puts one entry in the lane of each Target. A pump per queue reads
// and acknowledges:
//
//	s, err := store.Open(store.Options{Path: path, MaxBytes: 1 << 30})
//	go s.Run(ctx) // committer and TTL sweeper
//
//	err = s.Append(ctx, body, []store.Target{{Queue: "upstream", Priority: 0, TTL: 2 * time.Hour}})
//
//	for { // the pump of "upstream"
//		items, err := s.Read("upstream", 100)
//		if len(items) == 0 {
//			select {
//			case <-s.Wait("upstream"):
//			case <-ctx.Done():
//				return
//			}
//			continue
//		}
//		// Deliver; on failure call s.Rewind("upstream") and back off. On success ack,
//		// per priority, the highest seq delivered:
//		s.Ack("upstream", items[i].Priority, items[i].Seq)
//	}
//
// Delivery is at least once: after Rewind, or after a crash, items not yet acknowledged
// are read again. Items are read in seq order within a lane; across the lanes of a queue
// the scheduling rule below decides.
//
// A pump that serves many queues (the hub keeps one $upstream queue per sender) uses a
// Watcher instead of one Wait channel per queue: Watch(prefix) covers every queue of the
// prefix, existing or future; its C fires when one of them may have items, and Take says
// which:
//
//	w := s.Watch("$upstream")
//	defer w.Stop()
//	for _, q := range w.Take() { /* read q until Read returns nothing */ }
//	<-w.C()
//
// # Lifecycle
//
//	Open ──► open ──Run(ctx)──► running ──ctx done or Close──► stopped ──Close──► closed
//	         │                  │                              │
//	         │ writes wait      │ writes committed             │ writes: ErrClosed
//	         │ Read works       │ acks, TTL sweep              │ Read works until Close
//
// Writes (Append, AppendAsync, Ack, DeadLetter, DeleteQueue, Flush) are committed only by
// Run. Writes made after Open but before Run starts wait for it, so `go s.Run(ctx)` right
// after Open has no start-up race; once Run has returned, writes fail with ErrClosed (an
// AppendAsync still queued then gets done(ErrClosed)). When Run stops it first commits
// what was already submitted, including pending acks. Run is called once per Store.
//
// # Group commit
//
// Append hands its message to Run through a bounded queue (Options.QueueDepth; a full
// queue blocks Append until its ctx ends) and waits. AppendAsync hands it over the same
// way and returns: its done callback gets the result, from the committer's goroutine, in
// submission order; one caller can so keep many appends in one transaction (the hub does,
// for a client that pipelines its publishes). Run takes everything queued and, when the
// previous transaction held eight appends or more, waits at most Options.BatchDelay for
// more, stopping early once it holds as many appends as the previous transaction did
// (those writers, just released, have come back); it commits them in one bbolt
// transaction with its two fsyncs (Options.MaxBatch caps the size). After a smaller
// transaction it does not wait: a few appends per commit is what a modest rate brings by
// chance, and waiting to repeat that only delays the messages (see minWaitBatch). A lone
// writer therefore pays one commit per message; many writers share each commit. Always
// waiting the whole window was measured much worse on this 2-core machine
// (Go timers fire late under load: 2 writers got 140-680 msg/s instead of about 4,000),
// and never waiting halves the batches (64 writers: about 50k instead of 110k msg/s). Acks
// and TTL deletions ride along in the same transactions. bbolt's own db.Batch (a fixed
// 10 ms window) measured about 2.9k msg/s here, which is why the store does its own (see
// BenchmarkReferenceBoltBatch).
//
// # Lazy acknowledgements
//
// Ack applies at once in memory: Read and Rewind never return an acknowledged item again.
// On disk it is lazy: the next transaction takes every pending ack (an append's,
// usually, which applies them before its appends, so their freed bytes count under the
// cap), and without one an acknowledgement-only transaction is committed only once
// Options.AckBatch items (default 1000) are waiting or the oldest has waited
// Options.AckDelay (default 20 ms), by Flush, and when Run stops (Close). A commit costs
// two fsyncs, and committing each Ack on its own took about half of the committer's
// commits at low rates and made an append arriving meanwhile wait a whole commit. The
// price is at most AckDelay of re-delivery after a crash: delivery is at least once
// anyway. Stats and the byte counters reflect committed state, so they lag the acks by as
// much; the lane's checkpoint moves when the ack is committed.
//
// # Scheduling
//
// Read interleaves the lanes of a queue: the highest priority (lowest number) goes first,
// but a lower priority is never starved for ever. After Options.PriorityBurst (K, default
// 8) consecutive items from the highest waiting priority while a lower one was waiting,
// the next item comes from the lower priority whose next item is oldest, and the count
// restarts. With a steady flood at priority 0, a backlog at priority 5 still drains at one
// item in K+1. The decision is the pure function pick; the count persists across Read
// calls. A negative K gives strict priority (Azure IoT Edge's behaviour, which starves).
// One Read may return items of several priorities; ack each priority separately.
//
// # TTL
//
// Each entry carries its expiry (enqueue time + Target.TTL, or never). Read skips expired
// entries; the sweep (every Options.SweepInterval) deletes them from every lane, not only
// at the head, since one queue may hold entries with different TTLs. The sweep keeps a
// per-lane hint (earliest expiry, whether expiries grow with seq) so that it skips lanes
// with nothing expired and scans only the head of single-TTL lanes. Expired entries are
// counted in Stats.Dropped[DropTTL] when deleted; their pages are reused by bbolt.
//
// # Byte cap and accounting
//
// Options.MaxBytes caps Stats.Bytes, the sum over stored messages of Cost(len(body),
// targets) = len(body) + BodyOverhead + targets×EntryOverhead. A message whose own cost
// exceeds MaxBytes gets ErrTooLarge. When a message does not fit:
//   - RejectNew: Append returns ErrFull and nothing is stored (Stats.Refused).
//   - DropOldest: entries are deleted until it fits, from the lowest priority first
//     (highest number) and within it the entry enqueued first, across all queues (pure
//     function victim). Bodies are freed when their last entry goes. Counted in
//     Stats.Dropped[DropCap].
//
// SetMaxBytes changes the cap of an open store (the hub applies the $edgeHub twin's
// storeLimits.maxSizeBytes with it). Lowered below the usage: under RejectNew appends get
// ErrFull until the usage drops; under DropOldest the committer deletes entries in the
// order above, at most 4096 per transaction (trimBudget), until the usage is under the cap,
// and appends meanwhile only make room for themselves, so the usage never grows. The same
// trim runs when Run starts on a file opened with a cap below its usage.
//
// The counters that the cap checks (meta/bytes, meta/messages and each lane's len and
// bytes) are persisted in the same transactions as the entries they count, so they are
// exact after a restart or a crash without rescanning. Stats.FileBytes is the file size:
// bbolt never shrinks the file but reuses freed pages, so with a cap the file stops
// growing at roughly the cap plus page overhead.
//
// # Crash safety
//
// Every change is a bbolt transaction, so after a crash at any point (kill -9, power loss
// with fsync on) the file holds exactly the transactions that committed: every message
// whose Append returned nil (or whose AppendAsync reported nil) is in all its lanes,
// exactly once. Acks are committed lazily (above): items acked since the last committed
// transaction are delivered again (at least once, never lost), those acked before a Flush
// that returned nil are not. Sequence numbers are never reused within a lane
// (checkpoints/next), except after DeleteQueue. TestCrash_KillNine checks this against a
// child process killed with SIGKILL.
//
// A failed transaction (ENOSPC, EIO) is rolled back: its appends get ErrDisk (through
// done for AppendAsync), nothing of them is visible, the in-memory state is unchanged,
// pending acks are retried (alone first, since deleting frees pages), and later appends
// succeed once space returns. Appends submitted after a failed one are not failed with it
// unless they were in the same transaction: a caller that acknowledges in order (the hub)
// stops at the first failure itself.
//
// # On-disk schema (version 1)
//
// All integers are big-endian, so keys sort numerically.
//
//	meta/
//	    version  -> u64                 schema version (1); see migrations.go
//	    bytes    -> u64                 Stats.Bytes: sum of Cost over stored messages
//	    messages -> u64                 number of bodies
//	bodies/                             bucket sequence = last body id
//	    {id u64} -> body bytes
//	refs/
//	    {id u64} -> u32                 reference count, present only when > 1
//	                                    (a body without a key here has exactly one)
//	queues/
//	    {queue}/                        queue name = endpoint id (1..1024 bytes)
//	        {priority u32}/             one lane
//	            {seq u64} -> entry      28 bytes: body id u64 | body size u32 |
//	                                    enqueued unix ns i64 | expires unix ns i64 (0 = never)
//	checkpoints/
//	    {queue}/
//	        {priority u32} -> lane      32 bytes: checkpoint u64 (all seqs <= it acked) |
//	                                    next seq u64 | entries u64 | lane bytes u64
//
// Invariants (checked by the tests after every scenario and after each crash): every entry
// points at a stored body; a body's reference count equals the entries pointing at it;
// every entry's seq is in (checkpoint, next); the lane record's counts and meta's counts
// equal what is stored. Open refuses a file whose version is newer than the code
// (ErrSchema) and runs the migrations of older ones in order; testdata/v1.db is a fixture
// written by version 1.
//
// # Caveats
//
// The file is opened with bbolt's NoFreelistSync and the hashmap freelist (as etcd does):
// commits do not rewrite the freelist, which would otherwise grow to megabytes after a
// large backlog drains; the price is a scan of the file's B+tree on Open, proportional to
// the data stored (about 60 ms for 200,000 messages of 1 KB, 288 MB, from the page
// cache). bbolt also rescans after a failed commit, so keep MaxBytes well below the free
// disk space: ENOSPC is survivable but slow on a large file.
//
// A commit can fail after its pages reached the disk (an fsync error, say). Its appends
// get ErrDisk and are invisible while the process runs, but if the process dies before
// the next commit overwrites that meta page they may reappear on reopen: a sender that
// retried then causes a duplicate, never a loss.
//
// Only one process may open the file; Open gives up after 2 s on bbolt's file lock.
//
// Options.NoSync is for tests and benchmarks: with it, a machine crash (not a process
// crash) may lose acknowledged messages.
//
// Acks are applied in memory at once (Read and Rewind respect them) but committed lazily
// (see "Lazy acknowledgements"); Stats reflects committed state, so call Flush before
// asserting on it.
//
// The lock order is: queueState.readMu, then Store.mu. Store.mu is never held across a
// bbolt transaction. Watchers are guarded by Store.mu.
package store
