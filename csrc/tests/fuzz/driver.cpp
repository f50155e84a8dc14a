// A libFuzzer-compatible driver for gcc builds (no clang needed), linked with
// one LLVMFuzzerTestOneInput target:
//
//   fuzz_gguf [--seconds S] [--runs N] [--seed K] [--crash-dir D] CORPUS_DIR...
//
// 1. runs the target on every file of the corpus folders (the committed
//    seeds: valid files and the regression inputs of past crashes);
// 2. then a deterministic mutation run seeded from those files (bit flips,
//    interesting integers, insertions, deletions, truncations, splices;
//    half the time stacked on the previous mutant),
//    until S seconds (default 3) or N runs, whichever comes first; the
//    sequence depends only on K and the corpus.
// Each input is a fresh heap buffer of exactly its size, so a read past the
// end is an ASan report. On a crash the input is saved to
// D/crash-<iteration> (default: the working directory) before the process
// dies: from the sanitizers' death callback, or from a signal handler
// in a build without them. Exit status 0 means every input was handled.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Present only in sanitizer builds (weak: null otherwise).
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

namespace {

// The input being run, for the crash handlers (async-signal-safe use only).
const uint8_t* g_data = nullptr;
size_t g_size = 0;
char g_crash_path[4096] = "crash-input";

void save_current_input() {
  if (!g_data) return;
  const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  size_t done = 0;
  while (done < g_size) {
    const ssize_t w = ::write(fd, g_data + done, g_size - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  ::close(fd);
  const char msg[] = "\nfuzz driver: the crashing input was saved to ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
  (void)!::write(2, "\n", 1);
}

void on_signal(int sig) {
  save_current_input();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct Rng {  // splitmix64: small, fast, the same sequence everywhere
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

// Values that sit on the edges of size arithmetic.
const uint64_t kInteresting[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 64, 255, 256, 4096, 0x7fff, 0x8000, 0xffff,
                                 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull, 1ull << 40,
                                 1ull << 61, (1ull << 61) + 1, 1ull << 62, (1ull << 62) + 1, 0x7fffffffffffffffull,
                                 0x8000000000000000ull, 0xffffffffffffffe0ull, 0xffffffffffffffffull};

void mutate(std::vector<uint8_t>& d, const std::vector<std::vector<uint8_t>>& corpus, Rng& rng, size_t max_len) {
  const int n_ops = 1 + static_cast<int>(rng.below(4));
  for (int op = 0; op < n_ops; ++op) {
    switch (rng.below(8)) {
      case 0:  // flip a bit
        if (!d.empty()) d[rng.below(d.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
        break;
      case 1:  // random byte
        if (!d.empty()) d[rng.below(d.size())] = static_cast<uint8_t>(rng.next());
        break;
      case 2:  // an interesting 1/2/4/8-byte little-endian integer
      case 3: {
        const size_t w = size_t{1} << rng.below(4);
        if (d.size() < w) break;
        uint64_t v = kInteresting[rng.below(sizeof kInteresting / sizeof kInteresting[0])];
        if (rng.below(4) == 0) v += rng.below(3) - 1;
        std::memcpy(&d[rng.below(d.size() - w + 1)], &v, w);
        break;
      }
      case 4: {  // insert random bytes
        const size_t n = 1 + rng.below(16);
        if (d.size() + n > max_len) break;
        std::vector<uint8_t> ins;
        for (size_t k = 0; k < n; ++k) ins.push_back(static_cast<uint8_t>(rng.next()));
        d.insert(d.begin() + static_cast<std::ptrdiff_t>(rng.below(d.size() + 1)), ins.begin(), ins.end());
        break;
      }
      case 5: {  // delete a range
        if (d.empty()) break;
        const size_t at = rng.below(d.size());
        const size_t n = 1 + rng.below(std::min<size_t>(32, d.size() - at));
        d.erase(d.begin() + static_cast<std::ptrdiff_t>(at), d.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      case 6:  // truncate
        d.resize(rng.below(d.size() + 1));
        break;
      case 7: {  // splice: a piece of another corpus file over this one
        const auto& o = corpus[rng.below(corpus.size())];
        if (o.empty() || d.empty()) break;
        const size_t from = rng.below(o.size()), at = rng.below(d.size());
        const size_t n = std::min({o.size() - from, d.size() - at, size_t{1} + rng.below(64)});
        std::copy_n(o.begin() + static_cast<std::ptrdiff_t>(from), n, d.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      }
    }
  }
}

void run_one(const std::vector<uint8_t>& input, const std::string& crash_name, const std::string& crash_dir) {
  // A fresh allocation of exactly the input's size (never null, even when empty).
  uint8_t* buf = static_cast<uint8_t*>(std::malloc(input.empty() ? 1 : input.size()));
  if (!input.empty()) std::memcpy(buf, input.data(), input.size());
  std::snprintf(g_crash_path, sizeof g_crash_path, "%s/%s", crash_dir.c_str(), crash_name.c_str());
  g_data = buf;
  g_size = input.size();
  LLVMFuzzerTestOneInput(buf, input.size());
  g_data = nullptr;
  g_size = 0;
  std::free(buf);
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--seconds S] [--runs N] [--seed K] [--max-len BYTES] [--crash-dir D] CORPUS_DIR...\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  uint64_t runs = UINT64_MAX, seed = 1;
  size_t max_len = 1 << 16;
  std::string crash_dir = ".";
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--seconds" && has_value) seconds = std::atof(argv[++i]);
    else if (a == "--runs" && has_value) runs = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--seed" && has_value) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--max-len" && has_value) max_len = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--crash-dir" && has_value) crash_dir = argv[++i];
    else if (!a.empty() && a[0] == '-') return usage(argv[0]);
    else dirs.push_back(a);
  }
  if (dirs.empty()) return usage(argv[0]);
  if (__sanitizer_set_death_callback) {
    __sanitizer_set_death_callback(save_current_input);
  } else {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, on_signal);
  }

  // The seeds, in name order so the mutation sequence is reproducible.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;
  for (const auto& dir : dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      std::fprintf(stderr, "fuzz driver: cannot open corpus folder %s: %s\n", dir.c_str(), std::strerror(errno));
      return 2;
    }
    while (const dirent* e = ::readdir(d)) {
      const std::string path = dir + "/" + e->d_name;
      struct stat st;
      if (e->d_name[0] == '.' || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      std::ifstream in(path, std::ios::binary);
      seeds.emplace_back(path, std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {}));
    }
    ::closedir(d);
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "fuzz driver: no seed files in the corpus folders\n");
    return 2;
  }
  std::sort(seeds.begin(), seeds.end());

  for (const auto& [path, bytes] : seeds) {
    const std::string base = path.substr(path.find_last_of('/') + 1);
    run_one(bytes, "crash-seed-" + base, crash_dir);
  }
  std::fprintf(stderr, "fuzz driver: %zu seed files handled\n", seeds.size());

  std::vector<std::vector<uint8_t>> corpus;
  for (const auto& s : seeds) corpus.push_back(s.second);
  Rng rng{seed};
  const auto start = std::chrono::steady_clock::now();
  uint64_t n = 0;
  std::vector<uint8_t> last;
  for (; n < runs; ++n) {
    if ((n & 63) == 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= seconds)
      break;
    // Half the time the last input is mutated further: damage accumulates.
    if (last.empty() || rng.below(2) == 0) last = corpus[rng.below(corpus.size())];
    mutate(last, corpus, rng, max_len);
    run_one(last, "crash-mutation-" + std::to_string(seed) + "-" + std::to_string(n), crash_dir);
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "fuzz driver: %llu mutated inputs in %.1f s (seed %llu), no crash\n",
               static_cast<unsigned long long>(n), took, static_cast<unsigned long long>(seed));
  return 0;
}
