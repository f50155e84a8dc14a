// A flat byte buffer that a tensor views. Either owned (64-byte aligned heap
// memory, counted in the allocation statistics) or borrowed from something
// that outlives it: a memory-mapped file region, a numpy array. The
// keepalive handle is what keeps the borrowed memory valid.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace peftcpp {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  bool writable = true;
  bool owned = false;
  std::shared_ptr<void> keepalive;

  static std::shared_ptr<Storage> allocate(size_t nbytes, bool zero = false);
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes,
                                         std::shared_ptr<void> keepalive, bool writable);
};

// Bytes held by owned storages and scratch buffers: now and peak since reset.
struct MemoryStats {
  int64_t current = 0;
  int64_t peak = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();
void track_alloc(int64_t nbytes);  // for buffers outside Storage (scratch)

// Freed large blocks are kept for reuse (not counted in MemoryStats); these
// report and release them.
int64_t cached_bytes();
void empty_cache();

}  // namespace peftcpp
