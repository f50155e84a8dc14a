#include "core/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace peftcpp {

namespace {
std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
}  // namespace

void track_alloc(int64_t nbytes) {
  int64_t now = g_current.fetch_add(nbytes) + nbytes;
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

MemoryStats memory_stats() { return {g_current.load(), g_peak.load()}; }
void reset_peak_memory() { g_peak.store(g_current.load()); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, bool zero) {
  auto s = std::make_shared<Storage>();
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  if (zero) std::memset(p, 0, rounded);
  track_alloc(static_cast<int64_t>(rounded));
  s->data = p;
  s->nbytes = nbytes;
  s->owned = true;
  s->writable = true;
  s->keepalive = std::shared_ptr<void>(p, [rounded](void* q) {
    std::free(q);
    track_alloc(-static_cast<int64_t>(rounded));
  });
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, std::shared_ptr<void> keepalive,
                                         bool writable) {
  auto s = std::make_shared<Storage>();
  s->data = data;
  s->nbytes = nbytes;
  s->writable = writable;
  s->owned = false;
  s->keepalive = std::move(keepalive);
  return s;
}

}  // namespace peftcpp
