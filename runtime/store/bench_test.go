package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Writer counts for the parallel benchmarks: RunParallel starts
// parallelism×GOMAXPROCS goroutines, each a synchronous publisher (like one MQTT client
// waiting for its PUBACK).
var benchWriters = []int{2, 16, 64, 256}

func parallelism(writers int) int { return max(1, writers/runtime.GOMAXPROCS(0)) }

func reportRate(b *testing.B, msgs int) {
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppend1KB_Parallel measures durable (fsync) appends of 1 KB to one queue.
func BenchmarkAppend1KB_Parallel(b *testing.B) {
	for _, w := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			s := MustOpen(b, func(o *Options) { o.NoSync = false })
			body := make([]byte, 1024)
			targets := []Target{{Queue: "q"}}
			b.SetParallelism(parallelism(w))
			b.SetBytes(1024)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(context.Background(), body, targets); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRate(b, b.N)
			st := s.Stats()
			b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "msgs/commit")
		})
	}
}

// BenchmarkAppendAsync1KB measures durable appends of 1 KB by clients that each keep up
// to 64 appends in flight with AppendAsync (as the hub does for a client pipelining its
// publishes), against the synchronous writers of BenchmarkAppend1KB_Parallel.
func BenchmarkAppendAsync1KB(b *testing.B) {
	const window = 64
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := MustOpen(b, func(o *Options) { o.NoSync = false })
			body := make([]byte, 1024)
			targets := []Target{{Queue: "q"}}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(1024)
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					inflight := make(chan struct{}, window)
					for next.Add(1) <= int64(b.N) {
						inflight <- struct{}{}
						err := s.AppendAsync(context.Background(), body, targets, func(err error) {
							if err != nil {
								b.Error(err)
							}
							<-inflight
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
					for range window {
						inflight <- struct{}{} // all settled
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			reportRate(b, b.N)
			st := s.Stats()
			b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "msgs/commit")
		})
	}
}

// BenchmarkAppendAck measures the steady state of a hub: writers append 1 KB durably
// while a pump reads batches of 256 and acks them; b.N messages go in and out.
func BenchmarkAppendAck(b *testing.B) {
	for _, w := range benchWriters[1:] {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			s := MustOpen(b, func(o *Options) { o.NoSync = false })
			body := make([]byte, 1024)
			targets := []Target{{Queue: "q"}}
			var delivered atomic.Int64
			consumerDone := make(chan struct{})
			b.SetBytes(1024)
			b.ResetTimer()
			go func() {
				defer close(consumerDone)
				for delivered.Load() < int64(b.N) {
					items, err := s.Read("q", 256)
					if err != nil {
						b.Error(err)
						return
					}
					if len(items) == 0 {
						select {
						case <-s.Wait("q"):
						case <-time.After(time.Second):
						}
						continue
					}
					if err := s.Ack("q", 0, items[len(items)-1].Seq); err != nil {
						b.Error(err)
						return
					}
					delivered.Add(int64(len(items)))
				}
			}()
			b.SetParallelism(parallelism(w))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(context.Background(), body, targets); err != nil {
						b.Error(err)
						return
					}
				}
			})
			<-consumerDone
			b.StopTimer()
			reportRate(b, b.N)
			st := s.Stats()
			b.ReportMetric(float64(st.FileBytes)/(1<<20), "file-MB")
		})
	}
}

// openBolt opens a plain bbolt file for the reference benchmarks, with the same options
// as the store.
func openBolt(b *testing.B) *bolt.DB {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "ref.db"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("q")); return err }); err != nil {
		b.Fatal(err)
	}
	return db
}

// putOne stores a 1 KB value under the next sequence number.
func putOne(tx *bolt.Tx, body []byte) error {
	bk := tx.Bucket([]byte("q"))
	id, _ := bk.NextSequence()
	return bk.Put(u64Key(id), body)
}

// BenchmarkReferenceOneTxPerMessage is the naive baseline: one bbolt Update (two fsyncs)
// per message, with the same writers.
func BenchmarkReferenceOneTxPerMessage(b *testing.B) {
	for _, w := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			db := openBolt(b)
			body := make([]byte, 1024)
			b.SetParallelism(parallelism(w))
			b.SetBytes(1024)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := db.Update(func(tx *bolt.Tx) error { return putOne(tx, body) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRate(b, b.N)
		})
	}
}

// BenchmarkReferenceBoltBatch is bbolt's own group commit, db.Batch (10 ms window, 1000
// calls per batch by default), with the same writers.
func BenchmarkReferenceBoltBatch(b *testing.B) {
	for _, w := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			db := openBolt(b)
			body := make([]byte, 1024)
			b.SetParallelism(parallelism(w))
			b.SetBytes(1024)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := db.Batch(func(tx *bolt.Tx) error { return putOne(tx, body) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRate(b, b.N)
		})
	}
}
