package hub

// InputWrites returns how many writes of encoded PUBLISHes the module input pumps of s made,
// for BenchmarkDrainInput.
func InputWrites(s *Server) int64 { return s.delivery.batches.Load() }
