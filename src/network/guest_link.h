#pragma once

// The guest's side of its private network, which airlockd (telling the
// guest agent) and airlock-netstack (answering as its gateway) agree on:
// slirp's defaults.
namespace airlock::network::link {

inline constexpr const char* kNetwork = "10.0.2.0";
inline constexpr const char* kNetmask = "255.255.255.0";
inline constexpr int kPrefixLength = 24;
inline constexpr const char* kGateway = "10.0.2.2";
inline constexpr const char* kNameserver = "10.0.2.3";
inline constexpr const char* kGuestAddress = "10.0.2.15";
// Allowed name i is reached at 10.0.2.(kFirstNameHost + i).
inline constexpr int kFirstNameHost = 100;

}  // namespace airlock::network::link
