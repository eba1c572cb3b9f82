// A compact binary encoding for stored records: varints, zigzag signed varints and
// length-prefixed bytes. Stored formats built from it are written down in docs/formats/.
//
// Thread safety: a Writer or Reader belongs to one thread at a time.
#ifndef RAPPORT_BASE_CODEC_H_
#define RAPPORT_BASE_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace rapport::base {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Signed(int64_t v) {
    Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
  }
  // Eight bytes, least significant first (e.g. the bits of a double, which a varint would
  // stretch to ten).
  void Fixed64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void Reserve(size_t n) { out_.reserve(n); }
  std::string Finish() && { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what a Writer wrote. Every getter returns false (and leaves the reader failed) on
// truncated or malformed input; callers check once with ok() at the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    if (in_.empty()) return Fail();
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (in_.empty()) return Fail();
      const auto byte = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      result |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) {
        *v = result;
        return true;
      }
    }
    return Fail();
  }
  bool Signed(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (in_.size() < 8) return Fail();
    uint64_t result = 0;
    for (int i = 7; i >= 0; --i) result = (result << 8) | static_cast<uint8_t>(in_[i]);
    in_.remove_prefix(8);
    *v = result;
    return true;
  }
  bool Bytes(std::string_view* s) {
    uint64_t n;
    if (!Varint(&n) || n > in_.size()) return Fail();
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool Bytes(std::string* s) {
    std::string_view view;
    if (!Bytes(&view)) return false;
    s->assign(view);
    return true;
  }
  // True when nothing failed; `done()` also when all input was consumed.
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  // Bytes not read yet (a bound for list lengths: each entry takes at least one).
  size_t remaining() const { return in_.size(); }

 private:
  bool Fail() {
    ok_ = false;
    in_ = {};
    return false;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace rapport::base

#endif  // RAPPORT_BASE_CODEC_H_
