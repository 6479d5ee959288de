// The host side against a fake, scripted guest: the hostile-guest cases
// (malformed, oversized, truncated frames; floods; silence) must end the run
// with a classified error, never crash or hang the host.

#include "engine/guest_session.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "unit/fake_vm.h"

namespace airlock::engine {
namespace {

using fakes::FakeVm;
using fakes::raw_header;
using protocol::FrameType;

protocol::Exec small_exec(uint64_t stdout_limit = 1 << 20) {
  protocol::Exec exec;
  exec.argv = {"/bin/true"};
  exec.stdout_limit = stdout_limit;
  exec.stderr_limit = 1024;
  return exec;
}

std::string exit_payload(int code) {
  protocol::ExitReport report;
  report.exit_code = code;
  return report.to_payload();
}

const auto kSoon = std::chrono::seconds(5);

TEST(GuestSession, HappyPathStreamsOutputAndReportsExit) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{protocol::kProtocolVersion, "fake", 10}.to_payload());
  GuestSession session(vm, nullptr);
  auto hello = session.await_hello(SteadyClock::now() + kSoon);
  EXPECT_EQ(hello.agent_version, "fake");
  vm.send(FrameType::stdout_data, 1, "out");
  vm.send(FrameType::stderr_data, 1, "err");
  vm.send(FrameType::exit, 1, exit_payload(4));
  session.queue_file("/home/sandbox/main.py", "print(1)", 0644);
  auto outcome = session.execute(small_exec(), "input", nullptr, kSoon);
  ASSERT_TRUE(outcome.report);
  EXPECT_EQ(outcome.report->exit_code, 4);
  EXPECT_EQ(outcome.stdout_data, "out");
  EXPECT_EQ(outcome.stderr_data, "err");
  EXPECT_TRUE(outcome.failure.empty());
  // The host sent: hello_ack, write_file + data, exec, stdin + close.
  auto frames = vm.frames_from_host();
  std::vector<FrameType> types;
  for (auto& frame : frames) types.push_back(frame.type);
  EXPECT_EQ(types, (std::vector<FrameType>{FrameType::hello_ack, FrameType::write_file, FrameType::file_data,
                                           FrameType::exec, FrameType::stdin_data, FrameType::stdin_close}));
}

TEST(GuestSession, WrongProtocolVersionIsRefused) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{99, "future", 1}.to_payload());
  GuestSession session(vm, nullptr);
  EXPECT_THROW(session.await_hello(SteadyClock::now() + kSoon), Error);
}

TEST(GuestSession, SilentGuestTimesOutAtBoot) {
  FakeVm vm;
  GuestSession session(vm, nullptr);
  auto start = SteadyClock::now();
  try {
    session.await_hello(start + std::chrono::milliseconds(200));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::vm);
    EXPECT_NE(std::string(e.what()).find("did not start in time"), std::string::npos);
  }
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(3));
}

struct HostileCase {
  const char* name;
  std::function<void(FakeVm&)> misbehave;
  const char* expected_failure;
};

void PrintTo(const HostileCase& test_case, std::ostream* out) { *out << test_case.name; }

class HostileGuest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileGuest, EndsTheRunWithAClassifiedFailure) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{protocol::kProtocolVersion, "fake", 1}.to_payload());
  GuestSession session(vm, nullptr);
  session.await_hello(SteadyClock::now() + kSoon);
  GetParam().misbehave(vm);
  auto start = SteadyClock::now();
  auto outcome = session.execute(small_exec(), "", nullptr, kSoon);
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(4)) << "the host must not wait for the deadline";
  EXPECT_FALSE(outcome.report);
  EXPECT_NE(outcome.failure.find(GetParam().expected_failure), std::string::npos) << outcome.failure;
}

INSTANTIATE_TEST_SUITE_P(
    Frames, HostileGuest,
    ::testing::Values(
        HostileCase{"UnknownType", [](FakeVm& vm) { vm.send_raw(raw_header(0, 200)); }, "unknown frame type"},
        HostileCase{"OversizedLength", [](FakeVm& vm) { vm.send_raw(raw_header(0x7fffffff, 9)); },
                    "exceeds the maximum"},
        HostileCase{"TruncatedThenHangUp",
                    [](FakeVm& vm) {
                      vm.send_raw(raw_header(100, 9) + "only-part");
                      vm.hang_up();
                      vm.stop();
                    },
                    "stopped unexpectedly"},
        HostileCase{"GarbageExitReport", [](FakeVm& vm) { vm.send(FrameType::exit, 1, "{not json"); },
                    "not valid JSON"},
        HostileCase{"FrameForAnotherStream", [](FakeVm& vm) { vm.send(FrameType::stdout_data, 77, "x"); },
                    "unknown stream"},
        HostileCase{"HostOnlyFrameType", [](FakeVm& vm) { vm.send(FrameType::exec, 1, "{}"); },
                    "unexpected exec frame"},
        HostileCase{
            "AckForStdinNeverSent",
            [](FakeVm& vm) { vm.send(FrameType::stdin_ack, 1, protocol::StdinAck{1000}.to_payload()); },
            "never sent"},
        HostileCase{"VmDiesMidRun",
                    [](FakeVm& vm) {
                      vm.hang_up();
                      vm.stop();
                    },
                    "stopped unexpectedly"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(GuestSession, FloodBeyondTheLimitIsCappedOnTheHost) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{protocol::kProtocolVersion, "fake", 1}.to_payload());
  GuestSession session(vm, nullptr);
  session.await_hello(SteadyClock::now() + kSoon);
  // A guest that ignores its limit and keeps sending until told to stop.
  std::thread flooder([&vm] {
    std::string chunk(60000, 'z');
    for (int i = 0; i < 200; ++i) {
      try {
        vm.send(FrameType::stdout_data, 1, chunk);
      } catch (const Error&) {
        return;
      }
    }
    vm.send(FrameType::exit, 1, exit_payload(0));
  });
  auto outcome = session.execute(small_exec(100000), "", nullptr, kSoon);
  EXPECT_EQ(outcome.stdout_data.size(), 100000u);
  EXPECT_TRUE(outcome.stdout_truncated);
  EXPECT_TRUE(outcome.host_output_limit);
  vm.hang_up();
  flooder.join();
}

TEST(GuestSession, GuestThatNeverAnswersHitsTheDeadline) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{protocol::kProtocolVersion, "fake", 1}.to_payload());
  GuestSession session(vm, nullptr);
  session.await_hello(SteadyClock::now() + kSoon);
  auto start = SteadyClock::now();
  auto outcome = session.execute(small_exec(), "", nullptr, std::chrono::milliseconds(300));
  auto took = SteadyClock::now() - start;
  EXPECT_TRUE(outcome.host_timeout);
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(3));
  // The host told the guest to stop.
  bool cancel_sent = false;
  for (auto& frame : vm.frames_from_host()) cancel_sent |= frame.type == FrameType::cancel;
  EXPECT_TRUE(cancel_sent);
}

TEST(GuestSession, CancelStopsTheRun) {
  FakeVm vm;
  vm.send(FrameType::hello, 0, protocol::Hello{protocol::kProtocolVersion, "fake", 1}.to_payload());
  CancelToken cancel;
  GuestSession session(vm, &cancel);
  session.await_hello(SteadyClock::now() + kSoon);
  cancel.cancel();
  auto outcome = session.execute(small_exec(), "", nullptr, kSoon);
  EXPECT_TRUE(outcome.cancelled);
}

}  // namespace
}  // namespace airlock::engine
