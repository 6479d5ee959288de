#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "network/netstack_channel.h"

namespace airlock::netstack {

// This process's end of the channel to airlockd (network/netstack_channel.h).
// Any thread may ask for a connection or report a denial; one reader thread
// hands each answer to the thread that waits for it. When airlockd closes
// the channel, the process exits: it has nothing left to serve.
class DaemonLink {
 public:
  explicit DaemonLink(UniqueFd channel);
  ~DaemonLink();
  DaemonLink(const DaemonLink&) = delete;
  DaemonLink& operator=(const DaemonLink&) = delete;

  // The connected socket for route `route`, or throws network::EgressRefusal
  // with airlockd's reason (airlockd has recorded it).
  UniqueFd connect(uint32_t route);
  void report_denial(const std::string& reason);

 private:
  void read_loop();

  UniqueFd channel_;
  std::mutex mutex_;
  std::condition_variable answered_;
  uint32_t next_id_ = 1;
  std::map<uint32_t, std::optional<network::NetstackMessage>> waiting_;
  std::thread reader_;
};

}  // namespace airlock::netstack
