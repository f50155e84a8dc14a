#include "core/error.h"

#include <cstdio>

namespace peftcpp {

bool valid_utf8(const std::string& s) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte -> length and the allowed range of the second byte (RFC 3629).
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return false;
    if (len > n - i) return false;
    const unsigned char c1 = s[i + 1];
    if (c1 < lo || c1 > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

std::string quoted_text(const std::string& s, bool ascii_only) {
  const bool keep_utf8 = !ascii_only && valid_utf8(s);
  std::string out = "'";
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    // Stop only before a character's first byte, so no UTF-8 sequence is cut.
    if (i >= 200 && !(keep_utf8 && (c & 0xC0) == 0x80)) {
      out += "...";
      break;
    }
    // Line breaks to Python's str.splitlines are escaped too: C0 and C1
    // controls, U+2028 and U+2029 (escaped byte by byte, which keeps ASCII).
    size_t escape = 0;
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !keep_utf8)) escape = 1;
    else if (keep_utf8 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) escape = 2;
    else if (keep_utf8 && c == 0xE2 && s.compare(i + 1, 2, "\x80\xa8") == 0) escape = 3;
    else if (keep_utf8 && c == 0xE2 && s.compare(i + 1, 2, "\x80\xa9") == 0) escape = 3;
    if (!escape) {
      out += static_cast<char>(c);
      continue;
    }
    for (size_t k = 0; k < escape; ++k) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i + k]));
      out += buf;
    }
    i += escape - 1;
  }
  return out + "'";
}

}  // namespace peftcpp
