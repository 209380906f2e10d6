// A TCP proxy in front of a redis-server that fails the way a network does at the worst
// moment, on cue instead of by chance: it cuts a connection right after Redis applied a
// request, so that its answer never arrives, and it can accept connections it never
// answers. Header-only: one test uses it. One thread forwards every connection.
#ifndef SHOAL_TESTS_CUT_PROXY_HPP
#define SHOAL_TESTS_CUT_PROXY_HPP

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shoal::test {

class CutProxy {
 public:
  struct Options {
    /// Cut the first connection whose request holds this text (empty: never) once
    /// `applied` says Redis has carried the request out; its answer is dropped.
    std::string cut_after;
    std::function<bool()> applied;
    /// Connections after the first this many are accepted and never answered (-1: none).
    int answered = -1;

    static Options cut(std::string text, std::function<bool()> applied) {
      Options o;
      o.cut_after = std::move(text);
      o.applied = std::move(applied);
      return o;
    }
    static Options answer_first(int n) {
      Options o;
      o.answered = n;
      return o;
    }
  };

  CutProxy(int redis_port, Options options) : redis_port_(redis_port), options_(std::move(options)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (listen_ < 0 || ::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_, 16) != 0 || ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
    stop_ = ::eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { loop(); });
  }
  ~CutProxy() {
    if (thread_.joinable()) {
      const uint64_t one = 1;
      ssize_t n = ::write(stop_, &one, sizeof one);
      (void)n;
      thread_.join();
    }
    for (auto& l : links_) close_link(l);
    if (listen_ >= 0) ::close(listen_);
    if (stop_ >= 0) ::close(stop_);
  }
  CutProxy(const CutProxy&) = delete;
  CutProxy& operator=(const CutProxy&) = delete;

  bool ok() const { return port_ != 0; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  int cuts() const { return cuts_.load(); }

 private:
  struct Link {
    int client = -1;
    int server = -1;  // -1: a connection that is never answered
  };

  static sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }
  static bool send_all(int fd, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  static void close_link(Link& l) {
    if (l.client >= 0) ::close(l.client);
    if (l.server >= 0) ::close(l.server);
    l.client = l.server = -1;
  }

  void accept_one() {
    Link l;
    l.client = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
    if (l.client < 0) return;
    if (options_.answered < 0 || accepted_++ < options_.answered) {
      l.server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_in addr = loopback(redis_port_);
      if (l.server < 0 || ::connect(l.server, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        close_link(l);
        return;
      }
    }
    links_.push_back(l);
  }

  // False when the link is finished (closed by a side, or cut here).
  bool from_client(Link& l) {
    char buf[65536];
    const ssize_t n = ::recv(l.client, buf, sizeof buf, 0);
    if (n <= 0) return false;
    if (l.server < 0) return true;  // never answered: the request goes nowhere
    if (!send_all(l.server, buf, static_cast<size_t>(n))) return false;
    if (armed_ && !options_.cut_after.empty() &&
        std::string_view(buf, static_cast<size_t>(n)).find(options_.cut_after) != std::string_view::npos) {
      armed_ = false;
      // Redis answers at once; the answer waits in the socket until the cut drops it.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!options_.applied() && std::chrono::steady_clock::now() < deadline) {
        pollfd p{stop_, POLLIN, 0};
        if (::poll(&p, 1, 5) > 0) break;
      }
      ++cuts_;
      return false;
    }
    return true;
  }

  bool from_server(Link& l) {
    char buf[65536];
    const ssize_t n = ::recv(l.server, buf, sizeof buf, 0);
    return n > 0 && send_all(l.client, buf, static_cast<size_t>(n));
  }

  void loop() {
    for (;;) {
      std::vector<pollfd> fds = {{stop_, POLLIN, 0}, {listen_, POLLIN, 0}};
      for (const auto& l : links_) {
        fds.push_back({l.client, POLLIN, 0});
        fds.push_back({l.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) return;
      if (fds[1].revents != 0) accept_one();
      for (size_t i = 0; i < links_.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
        Link& l = links_[i];
        bool alive = true;
        if (fds[2 + 2 * i].revents != 0) alive = from_client(l);
        if (alive && l.server >= 0 && fds[2 + 2 * i + 1].revents != 0) alive = from_server(l);
        if (!alive) close_link(l);
      }
      std::erase_if(links_, [](const Link& l) { return l.client < 0; });
    }
  }

  int redis_port_;
  Options options_;
  int listen_ = -1;
  int stop_ = -1;
  int port_ = 0;
  int accepted_ = 0;
  bool armed_ = true;
  std::atomic<int> cuts_{0};
  std::vector<Link> links_;
  std::thread thread_;
};

}  // namespace shoal::test

#endif
