// An exec over a guest's mux against a scripted guest. One-shot runs and
// sandbox execs both take this path (ExecRecord on a GuestMux), so what a
// hostile guest can do to it must end the exec with a classified failure,
// never crash or hang the host.

#include "engine/exec_record.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <functional>
#include <thread>

#include "engine/guest_mux.h"
#include "protocol/messages.h"
#include "unit/fake_vm.h"

namespace airlock::engine {
namespace {

using fakes::FakeVm;
using fakes::raw_header;
using protocol::FrameType;

const auto kSoon = std::chrono::seconds(5);

struct MuxedGuest {
  FakeVm vm;
  std::shared_ptr<GuestMux> mux = std::make_shared<GuestMux>(vm, protocol::FrameDecoder{});
  ~MuxedGuest() { mux->shutdown(); }

  // What the host sent, once at least `count` frames came (or 5 s passed).
  std::vector<protocol::Frame> frames_from_host(size_t count) {
    std::vector<protocol::Frame> frames;
    const auto deadline = SteadyClock::now() + kSoon;
    while (frames.size() < count && SteadyClock::now() < deadline) {
      pollfd readable{vm.guest_fd(), POLLIN, 0};
      ::poll(&readable, 1, 50);
      for (auto& frame : vm.frames_from_host()) frames.push_back(std::move(frame));
    }
    return frames;
  }
};

std::shared_ptr<ExecRecord> new_record(uint64_t stdout_limit = 1 << 20) {
  ExecRecord::Options options;
  options.id = "ex-1";
  options.argv = {"/bin/true"};
  options.exec.argv = options.argv;
  options.exec.stdout_limit = stdout_limit;
  options.exec.stderr_limit = 1024;
  options.keep_per_stream = stdout_limit;
  return std::make_shared<ExecRecord>(std::move(options));
}

std::string exit_payload(int code) {
  protocol::ExitReport report;
  report.exit_code = code;
  return report.to_payload();
}

TEST(ExecRecord, StartSendsTheFileTheExecAndStdinInOrderThenCollectsTheOutcome) {
  MuxedGuest guest;
  auto record = new_record();
  const ExecFile code{"/tmp/main.py", "print(1)", 0644};
  record->start(guest.mux, &code, "input", /*keep_stdin_open=*/false);
  auto frames = guest.frames_from_host(5);
  std::vector<FrameType> types;
  for (const auto& frame : frames) {
    types.push_back(frame.type);
    EXPECT_EQ(frame.stream, record->stream());
  }
  ASSERT_EQ(types, (std::vector<FrameType>{FrameType::write_file, FrameType::file_data, FrameType::exec,
                                           FrameType::stdin_data, FrameType::stdin_close}));
  EXPECT_EQ(protocol::WriteFile::parse(frames[0].payload).path, "/tmp/main.py");
  EXPECT_EQ(frames[1].payload, "print(1)");
  EXPECT_EQ(frames[3].payload, "input");

  guest.vm.send(FrameType::stdin_ack, record->stream(), protocol::StdinAck{5}.to_payload());
  guest.vm.send(FrameType::stdout_data, record->stream(), "out");
  guest.vm.send(FrameType::stderr_data, record->stream(), "err");
  guest.vm.send(FrameType::exit, record->stream(), exit_payload(4));
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  ExecOutcome outcome = record->outcome();
  ASSERT_TRUE(outcome.report);
  EXPECT_EQ(outcome.report->exit_code, 4);
  EXPECT_EQ(outcome.stdout_data, "out");
  EXPECT_EQ(outcome.stderr_data, "err");
  EXPECT_TRUE(outcome.failure.empty()) << outcome.failure;
}

TEST(ExecRecord, AFileTheGuestCouldNotWriteFailsTheExec) {
  MuxedGuest guest;
  auto record = new_record();
  const ExecFile code{"/tmp/main.py", "print(1)", 0644};
  record->start(guest.mux, &code, "", false);
  guest.frames_from_host(4);
  guest.vm.send(FrameType::error, record->stream(),
                protocol::ErrorReport{"write_file /tmp/main.py: no space left", "no_space"}.to_payload());
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  EXPECT_NE(record->outcome().failure.find("no space left"), std::string::npos);
}

struct HostileCase {
  const char* name;
  std::function<void(FakeVm&, uint32_t stream)> misbehave;
  const char* expected_failure;
};

void PrintTo(const HostileCase& test_case, std::ostream* out) { *out << test_case.name; }

class HostileGuestOverTheMux : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileGuestOverTheMux, EndsTheExecWithAClassifiedFailure) {
  MuxedGuest guest;
  auto record = new_record();
  record->start(guest.mux, nullptr, "", false);
  guest.frames_from_host(2);  // the exec and its stdin_close
  const auto start = SteadyClock::now();
  GetParam().misbehave(guest.vm, record->stream());
  ASSERT_TRUE(record->wait_until_ended(start + std::chrono::seconds(4)))
      << "the host must not wait for a deadline";
  ExecOutcome outcome = record->outcome();
  EXPECT_FALSE(outcome.report);
  EXPECT_NE(outcome.failure.find(GetParam().expected_failure), std::string::npos) << outcome.failure;
}

INSTANTIATE_TEST_SUITE_P(
    Frames, HostileGuestOverTheMux,
    ::testing::Values(
        HostileCase{"UnknownType",
                    [](FakeVm& vm, uint32_t stream) { vm.send_raw(raw_header(0, 200, stream)); },
                    "unknown frame type"},
        HostileCase{"OversizedLength",
                    [](FakeVm& vm, uint32_t stream) { vm.send_raw(raw_header(0x7fffffff, 9, stream)); },
                    "exceeds the maximum"},
        HostileCase{"TruncatedThenHangUp",
                    [](FakeVm& vm, uint32_t stream) {
                      vm.send_raw(raw_header(100, 9, stream) + "only-part");
                      vm.hang_up();
                      vm.stop();
                    },
                    "stopped unexpectedly"},
        HostileCase{"GarbageExitReport",
                    [](FakeVm& vm, uint32_t stream) { vm.send(FrameType::exit, stream, "{not json"); },
                    "not valid JSON"},
        HostileCase{"HostOnlyFrameType",
                    [](FakeVm& vm, uint32_t stream) { vm.send(FrameType::exec, stream, "{}"); },
                    "unexpected exec frame"},
        HostileCase{"AckForStdinNeverSent",
                    [](FakeVm& vm, uint32_t stream) {
                      vm.send(FrameType::stdin_ack, stream, protocol::StdinAck{1000}.to_payload());
                    },
                    "never sent"},
        HostileCase{"VmDiesMidRun",
                    [](FakeVm& vm, uint32_t) {
                      vm.hang_up();
                      vm.stop();
                    },
                    "stopped unexpectedly"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(ExecRecord, AFrameForAStreamNobodyOpenedIsDroppedAndTheExecGoesOn) {
  MuxedGuest guest;
  auto record = new_record();
  record->start(guest.mux, nullptr, "", false);
  guest.frames_from_host(2);  // the exec and its stdin_close
  guest.vm.send(FrameType::stdout_data, record->stream() + 77, "not yours");
  guest.vm.send(FrameType::stdout_data, record->stream(), "mine");
  guest.vm.send(FrameType::exit, record->stream(), exit_payload(0));
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  EXPECT_EQ(record->outcome().stdout_data, "mine");
}

TEST(ExecRecord, OutputBeyondTheLimitIsCappedOnTheHost) {
  MuxedGuest guest;
  auto record = new_record(100000);
  record->start(guest.mux, nullptr, "", false);
  guest.frames_from_host(2);  // the exec and its stdin_close
  // A guest that ignores its limit.
  std::thread flooder([&guest, stream = record->stream()] {
    std::string chunk(60000, 'z');
    for (int i = 0; i < 50; ++i) guest.vm.send(FrameType::stdout_data, stream, chunk);
    guest.vm.send(FrameType::exit, stream, exit_payload(0));
  });
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  flooder.join();
  ExecOutcome outcome = record->outcome();
  EXPECT_EQ(outcome.stdout_data.size(), 100000u);
  EXPECT_TRUE(outcome.stdout_truncated);
  EXPECT_TRUE(outcome.host_output_limit);
}

TEST(ExecRecord, StdinGivenAtTheStartBeyondTheWindowFollowsTheAcknowledgements) {
  MuxedGuest guest;
  auto record = new_record();
  const std::string input((5 << 20) / 2, 'i');  // 2.5 MiB: starting must not wait for the guest
  record->start(guest.mux, nullptr, input, /*keep_stdin_open=*/false);
  uint64_t received = 0;
  bool closed = false;
  auto take = [&](size_t at_least) {
    for (const auto& frame : guest.frames_from_host(at_least)) {
      if (frame.type == FrameType::stdin_data) received += frame.payload.size();
      closed |= frame.type == FrameType::stdin_close;
    }
  };
  take(17);  // the exec and a window's worth
  EXPECT_EQ(received, 1u << 20);
  EXPECT_FALSE(closed);
  guest.vm.send(FrameType::stdin_ack, record->stream(), protocol::StdinAck{1 << 20}.to_payload());
  take(16);
  EXPECT_EQ(received, 2u << 20);
  EXPECT_FALSE(closed);
  guest.vm.send(FrameType::stdin_ack, record->stream(), protocol::StdinAck{1 << 20}.to_payload());
  take(9);  // the last half megabyte, then the close
  EXPECT_EQ(received, input.size());
  EXPECT_TRUE(closed);
  guest.vm.send(FrameType::exit, record->stream(), exit_payload(0));
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  EXPECT_TRUE(record->outcome().failure.empty()) << record->outcome().failure;
}

TEST(ExecRecord, StdinBeyondTheWindowWaitsForTheGuestsAcknowledgements) {
  MuxedGuest guest;
  auto record = new_record();
  record->start(guest.mux, nullptr, "", /*keep_stdin_open=*/true);
  guest.frames_from_host(1);
  const std::string megabyte(1 << 20, 'x');
  record->write_stdin(*guest.mux, megabyte, false, SteadyClock::now() + kSoon);
  // The window is full: no room until the guest acknowledges.
  EXPECT_FALSE(record->wait_for_stdin_room(SteadyClock::now() + std::chrono::milliseconds(100)));
  guest.vm.send(FrameType::stdin_ack, record->stream(), protocol::StdinAck{4096}.to_payload());
  EXPECT_TRUE(record->wait_for_stdin_room(SteadyClock::now() + kSoon));
  // The exec's end frees any writer that waits.
  guest.vm.send(FrameType::exit, record->stream(), exit_payload(0));
  ASSERT_TRUE(record->wait_until_ended(SteadyClock::now() + kSoon));
  EXPECT_TRUE(record->wait_for_stdin_room(SteadyClock::now() + std::chrono::milliseconds(100)));
}

}  // namespace
}  // namespace airlock::engine
