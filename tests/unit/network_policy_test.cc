#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "network/policy.h"

namespace airlock::network {
namespace {

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    return e.what();
  }
  return "no error";
}

TEST(NetworkPolicy, ParsesTheThreeModes) {
  EXPECT_EQ(parse_network_policy("none").mode, NetworkMode::none);
  EXPECT_EQ(parse_network_policy("full").mode, NetworkMode::full);
  NetworkPolicy policy = parse_network_policy("allow:B.example.com,a.test.,b.example.com");
  EXPECT_EQ(policy.mode, NetworkMode::allow);
  EXPECT_EQ(policy.allowed, (std::vector<std::string>{"a.test", "b.example.com"}));
  EXPECT_EQ(policy.to_string(), "allow:a.test,b.example.com");
}

TEST(NetworkPolicy, RefusesWhatIsNotADomainNameNamingIt) {
  const std::pair<const char*, const char*> refused[] = {
      {"allow:1.2.3.4", "'1.2.3.4' is not a domain name"},
      {"allow:*.example.com", "wildcards"},
      {"allow:https://a.test", "not a bare domain"},
      {"allow:a.test:443", "not a bare domain"},
      {"allow:[::1]", "not a bare domain"},
      {"allow:a.test,,b.test", "empty entry"},
      {"allow:", "empty entry"},
      {"allow:-bad.test", "'-bad.test'"},
      {"allow:a..test", "'a..test'"},
      {"internet", "not one of none, full, allow:"},
  };
  for (const auto& [text, fragment] : refused) {
    EXPECT_NE(error_of([text = text] { parse_network_policy(text); }).find(fragment), std::string::npos)
        << text;
  }
  std::string many = "allow:";
  for (int i = 0; i < 65; ++i) many += (i ? ",h" : "h") + std::to_string(i) + ".test";
  EXPECT_NE(error_of([&] { parse_network_policy(many); }).find("the limit is 64"), std::string::npos);
}

TEST(NetworkPolicy, CanonicalDomainRefusesNumericForms) {
  EXPECT_EQ(canonical_domain("Example.COM."), "example.com");
  EXPECT_FALSE(canonical_domain("127.1"));
  EXPECT_FALSE(canonical_domain("0x7f.1"));  // a resolver may read it as an IPv4 literal
  EXPECT_FALSE(canonical_domain("2130706433"));
  EXPECT_FALSE(canonical_domain(std::string(64, 'a') + ".test"));
  EXPECT_TRUE(canonical_domain(std::string(63, 'a') + ".test"));
}

sockaddr_storage address(const char* text) {
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (::inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    ADD_FAILURE() << text;
  }
  return storage;
}

std::optional<std::string> verdict(const char* text) {
  sockaddr_storage storage = address(text);
  return forbidden_address_reason(reinterpret_cast<sockaddr*>(&storage));
}

TEST(NetworkPolicy, ForbidsTheHostsOwnAddressesEvenPublicOnes) {
  // A host with a public address on an interface: a name resolving to it would reach the host's services.
  const sockaddr_storage own = address("93.184.216.34");
  sockaddr_storage elsewhere = address("93.184.216.35");
  sockaddr_storage same = own;
  EXPECT_EQ(forbidden_address_reason(reinterpret_cast<sockaddr*>(&same), {own}),
            std::optional<std::string>("one of this host's own addresses"));
  EXPECT_EQ(forbidden_address_reason(reinterpret_cast<sockaddr*>(&elsewhere), {own}), std::nullopt);
  // And the real host's interfaces are looked up: each one of them is refused.
  for (sockaddr_storage interface : host_addresses()) {
    EXPECT_NE(forbidden_address_reason(reinterpret_cast<sockaddr*>(&interface)), std::nullopt);
  }
  EXPECT_FALSE(host_addresses().empty()) << "no interface address found (lo has 127.0.0.1)";
}

TEST(NetworkPolicy, ForbidsEveryNonPublicAddress) {
  for (const char* text : {"127.0.0.1",
                           "10.1.2.3",
                           "172.16.0.1",
                           "172.31.255.255",
                           "192.168.1.1",
                           "169.254.169.254",
                           "169.254.1.1",
                           "100.64.0.1",
                           "0.0.0.0",
                           "224.0.0.1",
                           "255.255.255.255",
                           "192.0.2.1",
                           "198.18.0.1",
                           "::1",
                           "::",
                           "fe80::1",
                           "fc00::1",
                           "fd00:ec2::254",
                           "ff02::1",
                           "::ffff:127.0.0.1",
                           "::ffff:169.254.169.254",
                           "64:ff9b::a9fe:a9fe",
                           "2002:7f00:1::",
                           "2001:db8::1",
                           "2001:0:1::1",
                           "::127.0.0.1"}) {
    EXPECT_TRUE(verdict(text)) << text << " must be forbidden";
  }
  EXPECT_EQ(verdict("169.254.169.254"), "the cloud metadata service (169.254.169.254)");
  EXPECT_NE(verdict("::ffff:10.0.0.1")->find("private"), std::string::npos);
  for (const char* text :
       {"93.184.216.34", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::"}) {
    EXPECT_FALSE(verdict(text)) << text << " is public: " << verdict(text).value_or("");
  }
}

TEST(NetworkPolicy, ResolverEntries) {
  ResolverEntry pinned = parse_resolver_entry("API.test=127.0.0.1:8080");
  EXPECT_EQ(pinned.name, "api.test");
  EXPECT_TRUE(pinned.pinned);
  EXPECT_EQ(pinned.endpoint.describe(), "127.0.0.1:8080");
  ResolverEntry answer = parse_resolver_entry("meta.test=169.254.169.254");
  EXPECT_FALSE(answer.pinned);
  EXPECT_EQ(answer.endpoint.describe(), "169.254.169.254:0");
  EXPECT_EQ(parse_resolver_entry("six.test=[::1]:99").endpoint.describe(), "[::1]:99");
  EXPECT_FALSE(parse_resolver_entry("six.test=::ffff:127.0.0.1").pinned);
  EXPECT_NE(error_of([] { parse_resolver_entry("no-equals"); }).find("NAME=ADDRESS"), std::string::npos);
  EXPECT_NE(error_of([] { parse_resolver_entry("a.test=localhost"); }).find("not an IPv4 or IPv6"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_resolver_entry("a.test=1.2.3.4:0"); }).find("port"), std::string::npos);
  EXPECT_NE(error_of([] { parse_resolver_entry("a.test=1.2.3.4:"); }).find("port"), std::string::npos);
  EXPECT_NE(error_of([] { parse_resolver_entry("1.2.3.4=1.2.3.4"); }).find("not a domain name"),
            std::string::npos);
}

}  // namespace
}  // namespace airlock::network
