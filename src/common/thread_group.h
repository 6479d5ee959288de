#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace airlock {

// At most `max` threads at once, each serving one task (a connection); the
// ones that are done are joined before another starts, and the destructor
// joins the rest. Not thread-safe: one owner starts them.
class ThreadGroup {
 public:
  explicit ThreadGroup(size_t max) : max_(max) {}
  ~ThreadGroup() { reap(true); }
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  // False if `max` are still running, or the system has no thread to give.
  bool start(std::function<void()> task) {
    reap(false);
    if (threads_.size() >= max_) return false;
    auto done = std::make_shared<std::atomic<bool>>(false);
    try {
      threads_.push_back({std::thread([task = std::move(task), done] {
                            task();
                            done->store(true);
                          }),
                          done});
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }

  void reap(bool all) {
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (all || it->done->load()) {
        it->thread.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  size_t max_;
  std::vector<Running> threads_;
};

}  // namespace airlock
