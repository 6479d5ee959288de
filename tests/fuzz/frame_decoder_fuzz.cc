// libFuzzer target: the host-side decoding of guest bytes (frames, then the
// JSON messages inside them). Any input must end in frames or Error(protocol):
// never a crash, a hang or unbounded memory.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "protocol/context_messages.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airlock::protocol;
  FrameDecoder decoder;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    // Feed in uneven pieces, as a socket would deliver them.
    size_t piece = 1;
    while (!input.empty()) {
      size_t take = std::min(piece, input.size());
      decoder.feed(input.substr(0, take));
      input.remove_prefix(take);
      piece = piece * 3 + 1;
      while (auto frame = decoder.next()) {
        try {
          switch (frame->type) {
            case FrameType::hello: Hello::parse(frame->payload); break;
            case FrameType::exit: ExitReport::parse(frame->payload); break;
            case FrameType::stdin_ack: StdinAck::parse(frame->payload); break;
            case FrameType::error: ErrorReport::parse(frame->payload); break;
            case FrameType::context_info: ContextList::parse(frame->payload); break;
            case FrameType::context_done: ContextDone::parse(frame->payload); break;
            default: break;
          }
        } catch (const airlock::Error&) {
        }
      }
    }
    decoder.finish();
  } catch (const airlock::Error&) {
  }
  return 0;
}
