// docs/protocol.md against the code: every frame type the code has is in
// the document's table under its number and name, the table has no other
// rows, and the document states the current version.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace airlock::protocol {
namespace {

std::string protocol_document() {
  std::ifstream file(AIRLOCK_SOURCE_DIR "/docs/protocol.md");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(ProtocolDocument, ListsEveryFrameTypeByNumberAndName) {
  const std::string document = protocol_document();
  ASSERT_FALSE(document.empty()) << "read docs/protocol.md";
  std::set<std::pair<int, std::string>> documented;
  const std::regex row(R"(\n\| (\d+) \| `([a-z_]+)` \| (guest → host|host → guest|both ways) \|)");
  for (auto it = std::sregex_iterator(document.begin(), document.end(), row); it != std::sregex_iterator();
       ++it) {
    documented.insert({std::stoi((*it)[1]), (*it)[2]});
  }
  std::set<std::pair<int, std::string>> coded;
  for (int type = 1; type <= kMaxFrameType; ++type) {
    coded.insert({type, std::string(to_string(static_cast<FrameType>(type)))});
  }
  EXPECT_EQ(documented, coded);
  EXPECT_NE(document.find("one of the types below (1–" + std::to_string(kMaxFrameType) + ")"),
            std::string::npos);
}

TEST(ProtocolDocument, StatesTheCurrentVersion) {
  const std::string document = protocol_document();
  EXPECT_NE(document.find("(now " + std::to_string(kProtocolVersion) + ":"), std::string::npos);
  EXPECT_NE(document.find("`{\"protocol\":" + std::to_string(kProtocolVersion) + ","), std::string::npos);
  EXPECT_NE(document.find(", " + std::to_string(kProtocolVersion) + " `"), std::string::npos)
      << "the versioning paragraph says what version " << kProtocolVersion << " added";
}

}  // namespace
}  // namespace airlock::protocol
