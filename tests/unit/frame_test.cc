#include "protocol/frame.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace airlock::protocol {
namespace {

std::string header(uint32_t length, uint8_t type, uint8_t flags = 0, uint32_t stream = 0) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.push_back(0);
  out.push_back(0);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((stream >> (8 * i)) & 0xff));
  return out;
}

TEST(Frame, RoundTripsTypeStreamAndPayload) {
  std::string bytes = encode_frame(FrameType::stdout_data, 7, std::string("a\0b", 3));
  ASSERT_EQ(bytes.size(), kHeaderSize + 3);
  FrameDecoder decoder;
  decoder.feed(bytes);
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->type, FrameType::stdout_data);
  EXPECT_EQ(frame->stream, 7u);
  EXPECT_EQ(frame->payload, std::string("a\0b", 3));
  EXPECT_FALSE(decoder.next());
  EXPECT_NO_THROW(decoder.finish());
}

TEST(Frame, DecodesFramesFedOneByteAtATime) {
  std::string bytes = encode_frame(FrameType::exit, 1, "{}") + encode_frame(FrameType::stderr_data, 1, "xyz");
  FrameDecoder decoder;
  std::vector<Frame> frames;
  for (char c : bytes) {
    decoder.feed(std::string_view(&c, 1));
    while (auto frame = decoder.next()) frames.push_back(*frame);
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, FrameType::exit);
  EXPECT_EQ(frames[1].payload, "xyz");
}

TEST(Frame, EmptyPayloadIsAFrame) {
  FrameDecoder decoder;
  decoder.feed(encode_frame(FrameType::cancel, 3, ""));
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->type, FrameType::cancel);
  EXPECT_TRUE(frame->payload.empty());
}

TEST(Frame, MaximumPayloadIsAcceptedAndOneMoreByteIsNot) {
  FrameDecoder decoder;
  decoder.feed(encode_frame(FrameType::stdout_data, 1, std::string(kMaxPayload, 'x')));
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->payload.size(), kMaxPayload);
  EXPECT_THROW(encode_frame(FrameType::stdout_data, 1, std::string(kMaxPayload + 1, 'x')), Error);
}

TEST(Frame, OversizedLengthIsRejectedFromTheHeaderAlone) {
  FrameDecoder decoder;
  decoder.feed(header(0xFFFFFFFF, static_cast<uint8_t>(FrameType::stdout_data)));
  try {
    decoder.next();
    FAIL() << "expected a protocol error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::protocol);
    EXPECT_NE(std::string(e.what()).find("exceeds the maximum"), std::string::npos) << e.what();
  }
  // The decoder stays failed rather than resynchronising on garbage.
  EXPECT_THROW(decoder.feed("x"), Error);
}

TEST(Frame, UnknownTypeIsRejected) {
  for (uint8_t type : {uint8_t{0}, uint8_t{kMaxFrameType + 1}, uint8_t{255}}) {
    FrameDecoder decoder;
    decoder.feed(header(0, type));
    EXPECT_THROW(decoder.next(), Error) << "type " << int(type);
  }
}

TEST(Frame, ReservedBitsAreRejected) {
  FrameDecoder decoder;
  decoder.feed(header(0, static_cast<uint8_t>(FrameType::exit), /*flags=*/1));
  EXPECT_THROW(decoder.next(), Error);
}

TEST(Frame, TruncatedFrameIsAnErrorAtEndOfStream) {
  FrameDecoder decoder;
  std::string bytes = encode_frame(FrameType::stdout_data, 1, "hello");
  decoder.feed(bytes.substr(0, bytes.size() - 2));
  EXPECT_FALSE(decoder.next());
  try {
    decoder.finish();
    FAIL() << "expected a protocol error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::protocol);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
}

TEST(Frame, TruncatedHeaderIsAnErrorAtEndOfStream) {
  FrameDecoder decoder;
  decoder.feed(std::string(5, '\0'));
  EXPECT_FALSE(decoder.next());
  EXPECT_THROW(decoder.finish(), Error);
}

TEST(Frame, BufferStaysBoundedWhileAPayloadIsPending) {
  FrameDecoder decoder;
  decoder.feed(header(kMaxPayload, static_cast<uint8_t>(FrameType::stdout_data)));
  for (size_t fed = 0; fed < kMaxPayload; fed += 4096) {
    decoder.feed(std::string(4096, 'y'));
    if (fed + 4096 < kMaxPayload) {
      EXPECT_FALSE(decoder.next());
    }
  }
  EXPECT_LE(decoder.buffered(), kHeaderSize + kMaxPayload);
  EXPECT_TRUE(decoder.next());
}

}  // namespace
}  // namespace airlock::protocol
