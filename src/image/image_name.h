#pragma once

#include <string>

namespace airlock::image {

// Names are 1-64 of [a-z0-9._-], not starting with '-' or '.'. Throws
// Error(invalid_argument) saying so.
void check_image_name(const std::string& name);

}  // namespace airlock::image
