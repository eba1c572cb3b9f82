#include "rapport/base/time.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rapport::base {
namespace {

// Howard Hinnant's days_from_civil / civil_from_days (public-domain algorithms).
struct Civil {
  int64_t year;
  unsigned month;
  unsigned day;
};

Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  size_t pos() const { return pos_; }
  void Advance() { ++pos_; }

  // Reads exactly `n` digits.
  bool Digits(int n, int64_t* out) {
    int64_t v = 0;
    for (int i = 0; i < n; ++i) {
      char c = Peek();
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
      Advance();
    }
    *out = v;
    return true;
  }

  bool Consume(char c) {
    if (Peek() != c) return false;
    Advance();
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

absl::Status Expected(std::string_view text, size_t pos, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "'%s' is not an ISO-8601 date-time: expected %s at character %d", text, what, pos + 1));
}

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

absl::StatusOr<Micros> ParseIso8601(std::string_view text) {
  Cursor c(text);
  int64_t year, month, day, hour = 0, minute = 0, second = 0, micros = 0;
  if (!c.Digits(4, &year)) return Expected(text, c.pos(), "a four-digit year");
  if (!c.Consume('-')) return Expected(text, c.pos(), "'-'");
  if (!c.Digits(2, &month)) return Expected(text, c.pos(), "a two-digit month");
  if (!c.Consume('-')) return Expected(text, c.pos(), "'-'");
  if (!c.Digits(2, &day)) return Expected(text, c.pos(), "a two-digit day");
  if (year < 1 || month < 1 || month > 12 ||
      day < 1 || day > DaysInMonth(year, static_cast<unsigned>(month))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not an ISO-8601 date-time: no such date", text));
  }
  if (c.Peek() == 'T' || c.Peek() == 't' || c.Peek() == ' ') {
    c.Advance();
    if (!c.Digits(2, &hour)) return Expected(text, c.pos(), "a two-digit hour");
    if (!c.Consume(':')) return Expected(text, c.pos(), "':'");
    if (!c.Digits(2, &minute)) return Expected(text, c.pos(), "two-digit minutes");
    if (c.Consume(':')) {
      if (!c.Digits(2, &second)) return Expected(text, c.pos(), "two-digit seconds");
      if (c.Peek() == '.' || c.Peek() == ',') {
        c.Advance();
        int digits = 0;
        while (c.Peek() >= '0' && c.Peek() <= '9') {
          if (digits < 6) micros = micros * 10 + (c.Peek() - '0');
          ++digits;
          c.Advance();
        }
        if (digits == 0) return Expected(text, c.pos(), "fraction digits");
        for (int i = digits; i < 6; ++i) micros *= 10;
      }
    }
    // 60 is a leap second; it is accepted and counted as the first second of the next minute.
    if (hour > 23 || minute > 59 || second > 60) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s' is not an ISO-8601 date-time: no such time of day", text));
    }
  }
  int64_t offset_minutes = 0;
  if (c.Peek() == 'Z' || c.Peek() == 'z') {
    c.Advance();
  } else if (c.Peek() == '+' || c.Peek() == '-') {
    const int sign = c.Peek() == '-' ? -1 : 1;
    c.Advance();
    int64_t oh, om = 0;
    if (!c.Digits(2, &oh)) return Expected(text, c.pos(), "a two-digit offset hour");
    if (c.Consume(':')) {
      if (!c.Digits(2, &om)) return Expected(text, c.pos(), "two-digit offset minutes");
    } else if (!c.AtEnd()) {
      if (!c.Digits(2, &om)) return Expected(text, c.pos(), "two-digit offset minutes");
    }
    if (oh > 23 || om > 59) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s' is not an ISO-8601 date-time: offset out of range", text));
    }
    offset_minutes = sign * (oh * 60 + om);
  }
  if (!c.AtEnd()) return Expected(text, c.pos(), "the end of the date-time");

  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return seconds * kMicrosPerSecond + micros;
}

std::string FormatIso8601(Micros t) {
  int64_t days = t / kMicrosPerDay;
  int64_t rem = t % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  const Civil civil = CivilFromDays(days);
  const int64_t secs = rem / kMicrosPerSecond;
  const int64_t frac = rem % kMicrosPerSecond;
  // Written digit by digit: this runs twice for every stored event.
  std::string out(frac % kMicrosPerMilli == 0 ? 24 : 27, '0');
  auto put = [&out](size_t at, int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, civil.year, 4);
  out[4] = '-';
  put(5, civil.month, 2);
  out[7] = '-';
  put(8, civil.day, 2);
  out[10] = 'T';
  put(11, secs / 3600, 2);
  out[13] = ':';
  put(14, secs / 60 % 60, 2);
  out[16] = ':';
  put(17, secs % 60, 2);
  out[19] = '.';
  if (out.size() == 24) {
    put(20, frac / kMicrosPerMilli, 3);
  } else {
    put(20, frac, 6);
  }
  out.back() = 'Z';
  return out;
}

}  // namespace rapport::base
