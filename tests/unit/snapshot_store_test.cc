// The store of user snapshots, without a VM: drafts, names, digests, uses
// and what a later start finds.

#include "engine/snapshot_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/io.h"

namespace airlock::engine {
namespace {

namespace fs = std::filesystem;

class SnapshotStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("airlock-snapstore-" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A snapshot of two small files, committed.
  SnapshotMeta make(SnapshotStore& store, const std::string& name, bool ephemeral = false) {
    SnapshotStore::Draft draft = store.begin(name, {{"task", "42"}});
    write_file(draft.file("state"), "the state");
    write_file(draft.file("disk.qcow2"), "the disk");
    SnapshotMeta meta;
    meta.name = name;
    meta.labels = {{"task", "42"}};
    meta.ephemeral = ephemeral;
    meta.sandbox = {{"language", "shell"}};
    meta.files = {{"state", 0, ""}, {"disk.qcow2", 0, ""}};
    return store.commit(std::move(draft), std::move(meta));
  }

  fs::path root_;
};

TEST_F(SnapshotStoreTest, ACommittedSnapshotIsFoundByIdOrNameAndSurvivesARestart) {
  std::string id;
  {
    SnapshotStore store(root_.string());
    const SnapshotMeta meta = make(store, "clean");
    id = meta.id;
    EXPECT_EQ(id.rfind("snap-", 0), 0u);
    EXPECT_EQ(id.size(), 29u);
    EXPECT_EQ(meta.files[0].bytes, 9u);
    EXPECT_EQ(meta.digest.rfind("sha256:", 0), 0u);
    EXPECT_EQ(store.find("clean").id, id);
    EXPECT_THROW(make(store, "clean"), Error) << "names are unique";
  }
  SnapshotStore again(root_.string());
  ASSERT_EQ(again.list().size(), 1u);
  EXPECT_EQ(again.find(id).name, "clean");
  EXPECT_EQ(again.find(id).labels.at("task"), "42");
  EXPECT_NO_THROW(again.use("clean"));
}

TEST_F(SnapshotStoreTest, ADamagedFileOrMetadataIsRefusedWithItsName) {
  SnapshotStore store(root_.string());
  const SnapshotMeta meta = make(store, "damaged");
  const fs::path disk = root_ / meta.id / "disk.qcow2";
  fs::permissions(disk, fs::perms::owner_write, fs::perm_options::add);
  write_file(disk.string(), "the dusk");
  try {
    store.use("damaged");
    ADD_FAILURE() << "a changed file was used";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::conflict);
    EXPECT_NE(std::string(e.what()).find("disk.qcow2 does not match its digest"), std::string::npos)
        << e.what();
  }
  // Metadata edited by hand no longer matches its own digest: left out at the next start.
  const fs::path meta_path = root_ / meta.id / "meta.json";
  fs::permissions(meta_path, fs::perms::owner_write, fs::perm_options::add);
  std::string text = read_file(meta_path.string(), 1 << 20);
  text.replace(text.find("\"bytes\": 9"), 10, "\"bytes\": 8");
  write_file(meta_path.string(), text);
  std::vector<std::string> notices;
  SnapshotStore again(root_.string(), [&](const std::string& line) { notices.push_back(line); });
  EXPECT_TRUE(again.list().empty());
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find("its digest does not match its files"), std::string::npos) << notices[0];
}

TEST_F(SnapshotStoreTest, ASnapshotInUseCannotBeRemovedAndAnEphemeralOneGoesWithItsLastUse) {
  SnapshotStore store(root_.string());
  make(store, "kept");
  {
    auto use = store.use("kept");
    EXPECT_THROW(store.remove("kept"), Error);
  }
  EXPECT_EQ(store.remove("kept").name, "kept");
  EXPECT_THROW(store.find("kept"), Error);

  const SnapshotMeta fork = make(store, "", /*ephemeral=*/true);
  EXPECT_EQ(fork.name, fork.id);
  EXPECT_TRUE(store.list().empty()) << "an ephemeral snapshot is not listed";
  store.use(fork.id).reset();
  EXPECT_FALSE(fs::exists(root_ / fork.id));
  // One whose daemon died before its copies ended is removed at the next start.
  const SnapshotMeta orphan = make(store, "", true);
  SnapshotStore again(root_.string());
  EXPECT_FALSE(fs::exists(root_ / orphan.id));
}

TEST_F(SnapshotStoreTest, HalfBuiltDraftsAreNeverListedAndAreReaped) {
  {
    SnapshotStore store(root_.string());
    SnapshotStore::Draft draft = store.begin("never", {});
    write_file(draft.file("state"), "half");
  }  // the draft goes with its owner
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root_)) ++entries;
  EXPECT_EQ(entries, 0u);
  EXPECT_THROW(validate_snapshot_name("has space"), Error);
  EXPECT_THROW(validate_snapshot_name("snap-0"), Error);
  EXPECT_THROW(validate_labels({{"", "x"}}), Error);
  EXPECT_THROW(validate_labels({{"k", std::string(300, 'v')}}), Error);
}

}  // namespace
}  // namespace airlock::engine
