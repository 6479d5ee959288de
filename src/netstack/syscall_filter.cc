// Why an allowlist here and a deny-list in vmm/jail/seccomp.cc: QEMU is a
// large program whose calls we do not own (its own -sandbox filter narrows
// them), while this one is ours and small, and the filter is loaded by the
// running process (libseccomp allocates, which the jail's step between fork
// and exec may not), after it has set up everything it opens by path.
#include "netstack/syscall_filter.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "common/error.h"

namespace airlock::netstack {

namespace {

// What glibc, libstdc++'s threads, glib and libslirp call while moving frames and relaying.
constexpr int kAlways[] = {
    SCMP_SYS(read),         SCMP_SYS(write),
    SCMP_SYS(readv),        SCMP_SYS(writev),
    SCMP_SYS(recvfrom),     SCMP_SYS(sendto),
    SCMP_SYS(recvmsg),      SCMP_SYS(sendmsg),
    SCMP_SYS(poll),         SCMP_SYS(ppoll),
    SCMP_SYS(close),        SCMP_SYS(shutdown),
    SCMP_SYS(accept4),      SCMP_SYS(connect),
    SCMP_SYS(getsockopt),   SCMP_SYS(setsockopt),
    SCMP_SYS(getsockname),  SCMP_SYS(getpeername),
    SCMP_SYS(futex),        SCMP_SYS(mmap),
    SCMP_SYS(munmap),       SCMP_SYS(mprotect),
    SCMP_SYS(madvise),      SCMP_SYS(mremap),
    SCMP_SYS(brk),          SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),    SCMP_SYS(getrandom),
    SCMP_SYS(exit),         SCMP_SYS(exit_group),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(sigaltstack),  SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),         SCMP_SYS(gettid),
    SCMP_SYS(getpid),       SCMP_SYS(tgkill),
    SCMP_SYS(sched_yield),  SCMP_SYS(eventfd2),
    SCMP_SYS(fstat),        SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),        SCMP_SYS(sched_getaffinity),
};

// A `full` stack also resolves (libslirp reads /etc/resolv.conf for each
// DNS forward) and opens UDP and TCP sockets of its own to the internet.
constexpr int kFullNetwork[] = {SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(openat), SCMP_SYS(statx)};

struct Context {
  scmp_filter_ctx filter;
  ~Context() { seccomp_release(filter); }
};

void allow(scmp_filter_ctx filter, int call, const char* what) {
  if (const int error = seccomp_rule_add(filter, SCMP_ACT_ALLOW, call, 0); error < 0) {
    throw Error(ErrorCode::io, std::string("seccomp_rule_add(") + what + "): " + std::strerror(-error));
  }
}

template <typename... Conditions>
void allow_if(scmp_filter_ctx filter, int call, const char* what, Conditions... conditions) {
  if (const int error = seccomp_rule_add(filter, SCMP_ACT_ALLOW, call, sizeof...(conditions), conditions...);
      error < 0) {
    throw Error(ErrorCode::io, std::string("seccomp_rule_add(") + what + "): " + std::strerror(-error));
  }
}

}  // namespace

void restrict_system_calls(bool host_network) {
  Context context{seccomp_init(SCMP_ACT_KILL_PROCESS)};
  if (!context.filter) throw Error(ErrorCode::io, "seccomp_init failed");
  for (int call : kAlways) allow(context.filter, call, "always");
  if (host_network) {
    for (int call : kFullNetwork) allow(context.filter, call, "full network");
  }
  // Threads only: a clone without CLONE_THREAD would be a new process. glibc
  // tries clone3 first, whose flags a filter cannot read: ENOSYS makes it
  // use clone.
  allow_if(context.filter, SCMP_SYS(clone), "clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
  if (const int error = seccomp_rule_add(context.filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
      error < 0) {
    throw Error(ErrorCode::io, std::string("seccomp_rule_add(clone3): ") + std::strerror(-error));
  }
  // Sockets: Unix ones (to our listeners) always, the internet's only for `full`.
  allow_if(context.filter, SCMP_SYS(socket), "socket(AF_UNIX)", SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  if (host_network) {
    allow_if(context.filter, SCMP_SYS(socket), "socket(AF_INET)", SCMP_A0(SCMP_CMP_EQ, AF_INET));
    allow_if(context.filter, SCMP_SYS(socket), "socket(AF_INET6)", SCMP_A0(SCMP_CMP_EQ, AF_INET6));
  }
  // fcntl for flags only; ioctl for what libslirp asks of a socket.
  for (int command : {F_GETFL, F_SETFL, F_GETFD, F_SETFD}) {
    allow_if(context.filter, SCMP_SYS(fcntl), "fcntl",
             SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(command)));
  }
  for (unsigned long request : {FIONREAD, FIONBIO}) {
    allow_if(context.filter, SCMP_SYS(ioctl), "ioctl", SCMP_A1(SCMP_CMP_EQ, request));
  }
  if (const int error = seccomp_load(context.filter); error < 0) {
    throw Error(ErrorCode::io, std::string("seccomp_load: ") + std::strerror(-error));
  }
}

}  // namespace airlock::netstack
