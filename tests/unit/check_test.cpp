// SHOAL_CHECK guards the invariants of shoal's own system calls: a failure must stop the
// process at once with one line that names the place, the condition and errno.
#include "common/check.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <regex>
#include <string>

TEST_CASE("SHOAL_CHECK aborts with the condition, the place and errno", "[unit][check]") {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // the abort is the expected end: no core file
    ::dup2(out[1], STDERR_FILENO);
    ::signal(SIGABRT, SIG_DFL);  // Catch's handler would report it as this test failing
    SHOAL_CHECK(::close(-1) == 0);  // EBADF
    ::_exit(0);                     // not reached if the check works
  }
  ::close(out[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(err);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err.find("internal error: check failed at ") != std::string::npos);
  CHECK(std::regex_search(err, std::regex(R"(check_test\.cpp:[0-9]+: ::close\(-1\) == 0 \(errno 9: Bad file descriptor\))")));
  CHECK(err.find('\n') == err.size() - 1);  // one line
}

TEST_CASE("SHOAL_CHECK of a condition that holds does nothing", "[unit][check]") {
  errno = 0;
  SHOAL_CHECK(::getpid() > 0);
  CHECK(errno == 0);
}
