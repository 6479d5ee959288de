#include "image/image_name.h"

#include <algorithm>

#include "common/error.h"

namespace airlock::image {

void check_image_name(const std::string& name) {
  const bool valid = !name.empty() && name.size() <= 64 &&
                     std::all_of(name.begin(), name.end(),
                                 [](char c) {
                                   return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                          c == '_' || c == '.';
                                 }) &&
                     name.front() != '-' && name.front() != '.';
  if (!valid) {
    throw Error(ErrorCode::invalid_argument,
                "image name '" + name +
                    "' is invalid (1-64 of a-z, 0-9, '-', '_', '.', not starting with '-' or '.')");
  }
}

}  // namespace airlock::image
