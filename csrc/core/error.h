// Errors that cross into Python as a precise exception. Every message starts
// with "[op]" and names the shapes involved, so a user sees what went wrong
// without a debugger.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace peftcpp {

// Maps to Python TypeError (wrong dtype, wrong kind of argument).
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// A name, key or byte string from a file, for an error message: in single
// quotes, control bytes (and every non-ASCII byte when the string is not
// strict UTF-8, or when ascii_only) escaped as \xNN, cut after about 200
// bytes at a character boundary. The result is always one line of valid
// UTF-8, so the message converts to a Python str.
std::string quoted_text(const std::string& s, bool ascii_only = false);

// Whether s is UTF-8 as Python's strict decoder accepts it (no overlong
// forms, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& s);

}  // namespace peftcpp

// Shape and value errors -> ValueError.
#define PC_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) throw std::invalid_argument(::peftcpp::detail::cat(__VA_ARGS__)); \
  } while (0)
// Dtype errors -> TypeError.
#define PC_CHECK_TYPE(cond, ...)                                               \
  do {                                                                         \
    if (!(cond)) throw ::peftcpp::TypeError(::peftcpp::detail::cat(__VA_ARGS__)); \
  } while (0)
// Index errors -> IndexError.
#define PC_CHECK_INDEX(cond, ...)                                              \
  do {                                                                         \
    if (!(cond)) throw std::out_of_range(::peftcpp::detail::cat(__VA_ARGS__)); \
  } while (0)
