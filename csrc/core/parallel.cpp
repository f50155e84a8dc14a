#include "core/parallel.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <memory>

#include "core/storage.h"

namespace peftcpp {

void set_num_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

namespace {
struct Scratch {
  float* ptr = nullptr;
  size_t cap = 0;
  ~Scratch() {
    if (ptr) {
      std::free(ptr);
      track_alloc(-static_cast<int64_t>(cap * sizeof(float)));
    }
  }
};
thread_local Scratch t_scratch[4];
}  // namespace

float* scratch_f32(int slot, size_t n) {
  Scratch& s = t_scratch[slot];
  if (n > s.cap) {
    if (s.ptr) {
      std::free(s.ptr);
      track_alloc(-static_cast<int64_t>(s.cap * sizeof(float)));
    }
    size_t cap = (n + 15) / 16 * 16;
    s.ptr = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    if (!s.ptr) throw std::bad_alloc();
    s.cap = cap;
    track_alloc(static_cast<int64_t>(cap * sizeof(float)));
  }
  return s.ptr;
}

}  // namespace peftcpp
