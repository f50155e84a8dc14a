// Shared by the reader fuzz targets: what counts as a clean refusal, and a
// read of every byte a reader handed out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "io/atomic_file.h"  // FileError

namespace peftcpp_fuzz {

// XOR of every 8-byte word and the tail: reads each byte of [p, p + n) so a
// range outside the input is an ASan report (or a crash), never silent.
inline uint64_t touch(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, b + i, 8);
    acc ^= w;
  }
  for (; i < n; ++i) acc ^= b[i];
  return acc;
}

// Every byte of every element of a loaded tensor, counted element by element:
// a byte count computed as numel * element size could wrap like the bug it
// is meant to catch.
inline uint64_t touch_tensor(const peftcpp::Tensor& t) {
  const uint8_t* p = static_cast<const uint8_t*>(t.raw_data());
  const size_t es = peftcpp::dtype_size(t.dtype());
  uint64_t acc = 0;
  for (int64_t i = 0, n = t.numel(); i < n; ++i, p += es) acc ^= touch(p, es);
  return acc;
}

// The reader accepted a range it says lies in the input: check it does.
inline void expect_inside(const uint8_t* begin, size_t size, const void* p, size_t n) {
  const uint8_t* q = static_cast<const uint8_t*>(p);
  if (n > 0 && (q < begin || q > begin + size || n > static_cast<size_t>(begin + size - q))) std::abort();
}

// A refusal's message must reach a Python user as one line: valid UTF-8
// (else converting it raises UnicodeDecodeError) without line breaks.
inline void expect_one_line(const std::exception& e) {
  const std::string m = e.what();
  if (!peftcpp::valid_utf8(m) || m.find_first_of("\r\n") != std::string::npos) {
    std::fprintf(stderr, "fuzz: error message is not one line of UTF-8: %s\n", peftcpp::quoted_text(m).c_str());
    std::abort();
  }
}

// Runs body(); peftcpp's own errors (ValueError, TypeError, IndexError,
// OSError in Python) with one-line messages are clean refusals. Anything
// else escapes: an uncaught exception is a finding (bad_alloc from a hostile
// size, a parser's own exception type leaking through).
template <class F>
void refusing_cleanly(F&& body) {
  try {
    body();
  } catch (const std::invalid_argument& e) {
    expect_one_line(e);
  } catch (const std::out_of_range& e) {
    expect_one_line(e);
  } catch (const peftcpp::TypeError& e) {
    expect_one_line(e);
  } catch (const peftcpp::FileError& e) {
    expect_one_line(e);
  }
}

}  // namespace peftcpp_fuzz
