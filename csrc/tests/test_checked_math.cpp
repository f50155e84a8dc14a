// The checked size arithmetic (core/checked_math.h) at its edges, and the
// quoting of file-supplied names in error messages (core/error.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/checked_math.h"
#include "core/error.h"

using namespace peftcpp;

namespace {

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST(CheckedMath, MulAddPadAtTheInt64Limit) {
  EXPECT_EQ(checked_mul(1ull << 31, 1ull << 31, "x"), 1ull << 62);
  EXPECT_EQ(checked_mul(kMaxSize, 1, "x"), kMaxSize);
  EXPECT_EQ(checked_mul(0, UINT64_MAX, "x"), 0u);
  EXPECT_THROW(checked_mul(1ull << 62, 2, "x"), std::invalid_argument);   // 2^63: past int64
  EXPECT_THROW(checked_mul(1ull << 62, 4, "x"), std::invalid_argument);   // wraps to 0 unchecked
  EXPECT_THROW(checked_mul((1ull << 62) + 1, 4, "x"), std::invalid_argument);  // wraps to 4
  EXPECT_EQ(checked_add(kMaxSize - 1, 1, "x"), kMaxSize);
  EXPECT_THROW(checked_add(kMaxSize, 1, "x"), std::invalid_argument);
  EXPECT_THROW(checked_add(UINT64_MAX, 2, "x"), std::invalid_argument);  // wraps to 1 unchecked
  EXPECT_EQ(checked_pad(33, 32, "x"), 64u);
  EXPECT_EQ(checked_pad(64, 32, "x"), 64u);
  EXPECT_THROW(checked_pad(kMaxSize, 32, "x"), std::invalid_argument);
}

TEST(CheckedMath, NumelChecksEveryDimensionAndTheNonZeroProduct) {
  EXPECT_EQ(checked_numel({}, "t"), 1);
  EXPECT_EQ(checked_numel({3, 4}, "t"), 12);
  EXPECT_EQ(checked_numel({0, 5}, "t"), 0);
  EXPECT_EQ(checked_numel({1ll << 31, 1ll << 31}, "t"), 1ll << 62);
  EXPECT_THROW(checked_numel({-1}, "t"), std::invalid_argument);
  EXPECT_THROW(checked_numel({1ll << 32, 1ll << 32}, "t"), std::invalid_argument);
  // No element, but the strides of the other dimensions would overflow.
  EXPECT_THROW(checked_numel({0, 1ll << 40, 1ll << 40}, "t"), std::invalid_argument);
}

TEST(CheckedMath, MessagesStartWithTheCallersDescription) {
  EXPECT_EQ(message_of([] { checked_mul(1ull << 62, 4, "f.gguf: tensor ", "'w'", " byte size"); }),
            "f.gguf: tensor 'w' byte size is too large: 4611686018427387904 x 4 exceeds 2^63-1");
  EXPECT_EQ(message_of([] { checked_numel({4, -2}, "f.gguf: tensor 'w'"); }),
            "f.gguf: tensor 'w' has a negative dimension -2");
  EXPECT_EQ(message_of([] { checked_numel({1ll << 40, 1ll << 40}, "t"); }),
            "t has too many elements: [1099511627776, 1099511627776] exceeds 2^63-1");
}

TEST(QuotedText, EscapesWhatPythonCouldNotDecodeOrWouldSplit) {
  EXPECT_EQ(quoted_text("blk.0.attn_q.weight"), "'blk.0.attn_q.weight'");
  EXPECT_EQ(quoted_text("h\xc3\xa9llo"), "'h\xc3\xa9llo'");  // valid UTF-8 kept
  EXPECT_EQ(quoted_text("GG\xc1\x87"), "'GG\\xc1\\x87'");    // C1 87: an overlong form, not UTF-8
  EXPECT_EQ(quoted_text("w\xc0\xaf"), "'w\\xc0\\xaf'");
  EXPECT_EQ(quoted_text("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");  // a surrogate
  EXPECT_EQ(quoted_text("\xf4\x90\x80\x80"), "'\\xf4\\x90\\x80\\x80'");  // past U+10FFFF
  EXPECT_EQ(quoted_text("a\nb\r\x7f"), "'a\\x0ab\\x0d\\x7f'");
  EXPECT_EQ(quoted_text("a\xc2\x85" "b\xe2\x80\xa8"), "'a\\xc2\\x85b\\xe2\\x80\\xa8'");  // NEL, U+2028: line breaks
  EXPECT_EQ(quoted_text("h\xc3\xa9", /*ascii_only=*/true), "'h\\xc3\\xa9'");
  // Long strings are cut at a character boundary, never inside one.
  std::string long_name(199, 'x');
  long_name += "\xe2\x9c\x93\xe2\x9c\x93";
  const std::string q = quoted_text(long_name);
  EXPECT_EQ(q, "'" + std::string(199, 'x') + "\xe2\x9c\x93...'");
  EXPECT_TRUE(valid_utf8(q));
  EXPECT_FALSE(valid_utf8("\xc1\x87"));
  EXPECT_TRUE(valid_utf8("\xf0\x9f\x98\x80"));
}
