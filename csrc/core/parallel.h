// One OpenMP thread pool for our kernels and OpenBLAS (its OpenMP build).
#pragma once
#include <cstddef>
#include <cstdint>

namespace peftcpp {
void set_num_threads(int n);
int get_num_threads();

// A per-thread float buffer reused across calls (grows, never shrinks), for
// converting frozen half-precision weights on use without an allocation per
// call. slot separates buffers that must be alive at the same time.
float* scratch_f32(int slot, size_t n);
}  // namespace peftcpp
