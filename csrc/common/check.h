// Argument checks for the dispatchers. A failed check throws std::invalid_argument (Python's
// ValueError) whose message names the op, the argument and what was expected, e.g.
//   nmmfast._C.graph_conv: joints must be positive, got 0
// The Python wrappers validate arrays first and report in their own terms; these checks guard
// the params struct itself, so a caller going straight to nmmfast._C gets a message, not a crash.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/dtype.h"

namespace nmmfast {
namespace detail {

template <typename... Parts>
[[noreturn]] void check_failed(const char* op, const Parts&... parts) {
  std::ostringstream message;
  message << "nmmfast._C." << op << ": ";
  (message << ... << parts);
  throw std::invalid_argument(message.str());
}

// The i-th name of a stringified argument list "p.rows, p.joints" without its "p." prefix.
inline std::string argument_name(const char* names, int index) {
  std::string all(names), name;
  std::istringstream stream(all);
  for (int i = 0; i <= index && std::getline(stream, name, ',');) ++i;
  const auto first = name.find_first_not_of(' ');
  name = first == std::string::npos ? "" : name.substr(first);
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

inline void check_at_least(const char* op, const char* names, int64_t minimum,
                           std::initializer_list<int64_t> values) {
  int index = 0;
  for (int64_t value : values) {
    if (value < minimum) {
      const std::string expected = minimum == 1 ? "positive" : ">= " + std::to_string(minimum);
      check_failed(op, argument_name(names, index), " must be ", expected, ", got ", value);
    }
    ++index;
  }
}

inline void check_dtype(const char* op, const char* name, DType dtype,
                        std::initializer_list<DType> allowed) {
  for (DType ok : allowed)
    if (dtype == ok) return;
  std::string expected;
  for (DType ok : allowed) expected += (expected.empty() ? "" : " or ") + std::string(dtype_name(ok));
  check_failed(op, name, " must be ", expected, ", got ", dtype_name(dtype));
}

}  // namespace detail
}  // namespace nmmfast

// NMM_CHECK(condition, op, message parts...): the parts (streamed) say which argument and what it
// must be: NMM_CHECK(p.offsets, "ig_scale", "offsets [N + 1] must not be null").
#define NMM_CHECK(condition, op, ...)                                 \
  do {                                                                \
    if (!(condition)) ::nmmfast::detail::check_failed(op, __VA_ARGS__); \
  } while (0)

// NMM_CHECK_NONNEGATIVE(op, sizes...) / NMM_CHECK_POSITIVE(op, sizes...): every size, named by
// its field, is >= 0 / > 0.
#define NMM_CHECK_NONNEGATIVE(op, ...) \
  ::nmmfast::detail::check_at_least(op, #__VA_ARGS__, 0, {__VA_ARGS__})
#define NMM_CHECK_POSITIVE(op, ...) \
  ::nmmfast::detail::check_at_least(op, #__VA_ARGS__, 1, {__VA_ARGS__})

// NMM_CHECK_DTYPE(op, field, allowed dtypes...): field is one of the listed DType values.
#define NMM_CHECK_DTYPE(op, field, ...) \
  ::nmmfast::detail::check_dtype(op, ::nmmfast::detail::argument_name(#field, 0).c_str(), field, {__VA_ARGS__})
