#include "core/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

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

namespace {
// Large blocks are cached by size class and reused: a training step frees and
// re-allocates the same activation sizes every step, and handing them back to
// the OS (glibc mmaps big blocks) costs a page fault per 4 KiB on each reuse.
// Size classes are 1/8 steps between powers of two (≤ 12.5% slack).
constexpr size_t kCacheMin = 64 * 1024;
constexpr size_t kCacheCap = size_t(2) << 30;  // cached bytes kept at most

struct BlockCache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0;

  static size_t size_class(size_t n) {
    if (n < kCacheMin) return (n + 63) / 64 * 64;
    size_t p = size_t(1) << (63 - __builtin_clzll(n));  // largest power of two ≤ n
    size_t step = p / 8;
    return (n + step - 1) / step * step;
  }
  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = free.find(cls);
    if (it == free.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached -= cls;
    return p;
  }
  void give(void* p, size_t cls) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (cached + cls <= kCacheCap) {
        free[cls].push_back(p);
        cached += cls;
        return;
      }
    }
    std::free(p);
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& kv : free)
      for (void* p : kv.second) std::free(p);
    free.clear();
    cached = 0;
  }
};

// Never destroyed: storages may be freed during static destruction.
BlockCache& cache() {
  static BlockCache* c = new BlockCache();
  return *c;
}
}  // namespace

int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return static_cast<int64_t>(cache().cached);
}

void empty_cache() { cache().release_all(); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, bool zero) {
  auto s = std::make_shared<Storage>();
  const size_t cls = BlockCache::size_class(nbytes == 0 ? 64 : nbytes);
  const bool cacheable = cls >= kCacheMin;
  void* p = cacheable ? cache().take(cls) : nullptr;
  if (!p) p = std::aligned_alloc(64, cls);
  if (!p) {
    empty_cache();  // the cache may be what stands between us and the memory
    p = std::aligned_alloc(64, cls);
    if (!p) throw std::bad_alloc();
  }
  if (zero) std::memset(p, 0, cls);
  track_alloc(static_cast<int64_t>(cls));
  s->data = p;
  s->nbytes = nbytes;
  s->owned = true;
  s->writable = true;
  s->keepalive = std::shared_ptr<void>(p, [cls, cacheable](void* q) {
    track_alloc(-static_cast<int64_t>(cls));
    if (cacheable)
      cache().give(q, cls);
    else
      std::free(q);
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
