#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace airlock::engine {

// Threads that live as long as the engine, on which VMs that outlive a
// request are started (a pool's guests, a sandbox's). Linux ties
// PR_SET_PDEATHSIG, which kills QEMU and its network stack if airlockd
// dies, to the *thread* that forked them: a VM started on a connection's
// thread would be killed when that thread ends, and one started on a pool's
// refill thread when that pool is deleted.
class LastingThreads {
 public:
  explicit LastingThreads(int count);
  ~LastingThreads();  // finishes the queued jobs, then joins
  LastingThreads(const LastingThreads&) = delete;
  LastingThreads& operator=(const LastingThreads&) = delete;

  // Runs `job` on one of the threads and returns what it returns (or throws what it throws).
  template <typename Result>
  Result run(std::function<Result()> job) {
    std::packaged_task<Result()> task(std::move(job));
    std::future<Result> result = task.get_future();
    post([&task] { task(); });
    return result.get();
  }

 private:
  void post(std::function<void()> job);
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace airlock::engine
