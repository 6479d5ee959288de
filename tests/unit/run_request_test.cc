#include "engine/run_request.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/languages.h"

namespace airlock::engine {
namespace {

RunRequest valid_request() {
  RunRequest request;
  request.language = "python";
  request.code = "print(1)";
  return request;
}

// The message an invalid_argument error carries, or "" if `action` accepts.
template <typename Action>
std::string rejection_of(Action action) {
  try {
    action();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    return e.what();
  }
  return "";
}

std::string rejection(const RunRequest& request) {
  return rejection_of([&] { validate(request); });
}

std::string mount_rejection(const std::string& text) {
  return rejection_of([&] { parse_mount(text); });
}

TEST(RunRequest, DefaultsAreValid) { EXPECT_EQ(rejection(valid_request()), ""); }

TEST(RunRequest, EachLimitIsEnforcedWithAMessageNamingIt) {
  auto request = valid_request();
  request.language = "cobol";
  EXPECT_NE(rejection(request).find("unknown language 'cobol'"), std::string::npos);

  request = valid_request();
  request.code = "";
  EXPECT_NE(rejection(request).find("code is empty"), std::string::npos);

  request = valid_request();
  request.code = std::string(Limits::kMaxCodeBytes + 1, 'x');
  EXPECT_NE(rejection(request).find("1 MiB"), std::string::npos);
  request.code = std::string(Limits::kMaxCodeBytes, 'x');
  EXPECT_EQ(rejection(request), "");

  for (int timeout : {0, 301, -5}) {
    request = valid_request();
    request.timeout_s = timeout;
    EXPECT_NE(rejection(request).find("timeout"), std::string::npos) << timeout;
  }
  for (int memory : {127, 2049}) {
    request = valid_request();
    request.memory_mb = memory;
    EXPECT_NE(rejection(request).find("memory"), std::string::npos) << memory;
  }
  for (int cpus : {0, Limits::kMaxCpus + 1}) {
    request = valid_request();
    request.cpus = cpus;
    EXPECT_NE(rejection(request).find("cpus"), std::string::npos) << cpus;
  }
  for (int processes : {Limits::kMinProcesses - 1, Limits::kMaxProcesses + 1}) {
    request = valid_request();
    request.max_processes = processes;
    EXPECT_NE(rejection(request).find("process limit"), std::string::npos) << processes;
  }
  for (int files : {Limits::kMinOpenFiles - 1, Limits::kMaxOpenFiles + 1}) {
    request = valid_request();
    request.max_open_files = files;
    EXPECT_NE(rejection(request).find("open file limit"), std::string::npos) << files;
  }
  for (const char* network : {"wifi", "allow:", "allow:1.2.3.4", "allow:*.example.com"}) {
    request = valid_request();
    request.network = network;
    EXPECT_NE(rejection(request).find("network"), std::string::npos) << network;
  }
  for (const char* network : {"none", "full", "allow:example.test,api.example.test"}) {
    request = valid_request();
    request.network = network;
    EXPECT_NO_THROW(validate(request)) << network;
  }
  for (int disk : {0, Limits::kMaxDiskMb + 1}) {
    request = valid_request();
    request.disk_mb = disk;
    EXPECT_NE(rejection(request).find("disk"), std::string::npos) << disk;
  }
  request = valid_request();
  request.stdout_limit = Limits::kMaxOutputLimit + 1;
  EXPECT_NE(rejection(request).find("stdout limit"), std::string::npos);
}

TEST(RunRequest, EnvironmentIsChecked) {
  auto request = valid_request();
  request.env = {{"1BAD", "x"}};
  EXPECT_NE(rejection(request).find("'1BAD' is invalid"), std::string::npos);
  request.env = {{"GOOD", std::string("a\0b", 3)}};
  EXPECT_NE(rejection(request).find("NUL-free UTF-8"), std::string::npos);
  request.env = {{"GOOD", "x y=z"}, {"_ok2", ""}};
  EXPECT_EQ(rejection(request), "");
  EXPECT_THROW(parse_env_assignment("NOEQUALS"), Error);
  EXPECT_EQ(parse_env_assignment("A=b=c").second, "b=c");
}

TEST(Languages, AliasesResolve) {
  EXPECT_EQ(find_language("py").name, "python");
  EXPECT_EQ(find_language("node").name, "javascript");
  EXPECT_EQ(find_language("bash").name, "shell");
  EXPECT_THROW(find_language("Python"), Error);
}

TEST(Utf8, ValidatesStrictly) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // cut short
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

TEST(Mounts, ParsesAndNormalisesReadOnlyMounts) {
  MountSpec mount = parse_mount("ro:/srv/data:/data//set/./");
  EXPECT_EQ(mount.host_path, "/srv/data");
  EXPECT_EQ(mount.guest_path, "/data/set");
  EXPECT_EQ(mount.to_string(), "ro:/srv/data:/data/set");
  EXPECT_EQ(parse_mount("ro:/srv/with:colon:/home/sandbox/input").host_path, "/srv/with:colon");
}

TEST(Mounts, RefusesWhatCouldWriteTheHostOrHideTheGuestSystem) {
  EXPECT_NE(mount_rejection("rw:/srv:/data").find("rw mounts are not supported"), std::string::npos);
  EXPECT_NE(mount_rejection(":/srv:/data").find("mode '' is not ro"), std::string::npos);
  EXPECT_NE(mount_rejection("/srv:/data").find("ro:HOST_DIR:GUEST_DIR"), std::string::npos);
  EXPECT_NE(mount_rejection("ro:/srv:/").find("names no file"), std::string::npos);
  EXPECT_NE(mount_rejection("ro:/srv").find("ro:HOST_DIR:GUEST_DIR"), std::string::npos);
  EXPECT_NE(mount_rejection("ro:srv:/data").find("is not absolute"), std::string::npos);
  EXPECT_NE(mount_rejection("ro:/srv:data").find("not absolute"), std::string::npos);
  EXPECT_NE(mount_rejection("ro:/srv:/data/../etc").find("'..'"), std::string::npos);
  for (const char* guest : {"/home", "/home/sandbox/"}) {
    EXPECT_NE(mount_rejection(std::string("ro:/srv:") + guest).find("would hide"), std::string::npos)
        << guest;
  }
  for (const char* guest : {"/etc", "/usr/lib/x", "/proc", "/dev/shm", "/tmp/x", "/bin"}) {
    EXPECT_NE(mount_rejection(std::string("ro:/srv:") + guest).find("belongs to the guest system"),
              std::string::npos)
        << guest;
  }
  RunRequest request;
  request.language = "python";
  request.code = "print(1)";
  request.mounts = {parse_mount("ro:/a:/data"), parse_mount("ro:/b:/data/inner")};
  try {
    validate(request);
    ADD_FAILURE() << "overlapping mounts accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlap"), std::string::npos) << e.what();
  }
  request.mounts.assign(Limits::kMaxMounts + 1, parse_mount("ro:/a:/data"));
  EXPECT_THROW(validate(request), Error);
}

}  // namespace
}  // namespace airlock::engine
