// The seeded random source for dropout and initialisation. Counter-based
// (SplitMix64 of seed and a running offset), so a given seed gives the same
// numbers whatever the thread count, and a state is just (seed, offset):
// checkpointing saves and restores it to replay dropout masks exactly.
#pragma once
#include <cstdint>

namespace peftcpp {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

class Generator {
 public:
  static Generator& global();
  void manual_seed(uint64_t seed) { state_ = {seed, 0}; }
  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }
  // Reserves n counters; element i of the draw uses counter base+i.
  uint64_t reserve(uint64_t n) {
    uint64_t base = state_.offset;
    state_.offset += n;
    return base;
  }
  uint64_t seed() const { return state_.seed; }

  static uint64_t bits(uint64_t seed, uint64_t counter) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + counter + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits.
  static float uniform(uint64_t seed, uint64_t counter) {
    return static_cast<float>(bits(seed, counter) >> 40) * (1.0f / 16777216.0f);
  }

 private:
  GeneratorState state_{};
};

}  // namespace peftcpp
