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
