#include "rapport/wire/json_text.h"

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>

namespace rapport::wire {

void AppendQuoted(std::string* out, std::string_view s) {
  *out += boost::json::serialize(boost::json::string_view(s.data(), s.size()));
}

std::string Quote(std::string_view s) {
  std::string out;
  AppendQuoted(&out, s);
  return out;
}

}  // namespace rapport::wire
