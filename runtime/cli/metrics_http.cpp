#include "metrics_http.hpp"

#include "common/event.hpp"
#include "common/printable.hpp"
#include "config/values.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::cli {

namespace {

using Clock = std::chrono::steady_clock;
using detail::Fd;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on `fd` until `deadline`, or until `stop` is readable. False: time
// is up, the responder stops, or the socket failed.
bool wait_for(int fd, short events, int stop, Clock::time_point deadline) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {stop, POLLIN, 0}};
    const int n = ::poll(p, 2, ms_left(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || p[1].revents != 0) return false;
    return true;
  }
}

void send_all(int fd, int stop, const std::string& data, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && wait_for(fd, POLLOUT, stop, deadline)) continue;
    return;  // a client that does not read loses its answer
  }
}

std::string endpoint_text(const sockaddr_storage& a) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a), sizeof a, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  return a.ss_family == AF_INET6 ? "[" + std::string(host) + "]:" + serv : std::string(host) + ":" + serv;
}

}  // namespace

Result<std::unique_ptr<HttpResponder>> HttpResponder::start(const std::string& listen, const std::string& named,
                                                            Handler handler) {
  std::string host;
  uint16_t port = 0;
  if (!detail::parse_listen(listen, host, port))
    return Error{Errc::config, named + ": expected HOST:PORT, [IPV6]:PORT, :PORT or PORT (port 0 to 65535), found '" +
                                   detail::printable(listen, 80) + "'"};
  const std::string where = "metrics: cannot listen on " + detail::printable(listen, 80) + " (" + named + "): ";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return Error{Errc::config, where + ::gai_strerror(rc)};
  int err = 0;
  Fd sock;
  for (addrinfo* a = found; a != nullptr && !sock; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!s) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(s.get(), 16) != 0) {
      err = errno;
      continue;
    }
    sock = std::move(s);
  }
  ::freeaddrinfo(found);
  if (!sock) return Error{Errc::config, where + std::strerror(err)};
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    return Error{Errc::io, where + std::strerror(errno)};
  Fd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return Error{Errc::io, std::string("eventfd: ") + std::strerror(errno)};
  return std::unique_ptr<HttpResponder>(
      new HttpResponder(std::move(sock), std::move(stop), "http://" + endpoint_text(bound), std::move(handler)));
}

HttpResponder::HttpResponder(Fd listener, Fd stop, std::string url, Handler handler)
    : listener_(std::move(listener)), stop_(std::move(stop)), url_(std::move(url)), handler_(std::move(handler)) {
  thread_ = std::thread([this] { serve(); });
}

HttpResponder::~HttpResponder() {
  detail::eventfd_signal(stop_.get());
  thread_.join();
}

void HttpResponder::serve() {
  for (;;) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if (p[0].revents == 0) continue;
    Fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (client) answer(client.get());
  }
}

// One request, one answer, then the connection closes (Connection: close): no
// keep-alive state, and no client holds the thread for longer than the two timeouts.
void HttpResponder::answer(int fd) {
  const auto read_deadline = Clock::now() + kReadTimeout;
  std::string request;
  char buf[2048];
  HttpResponse r;
  bool whole = false;
  while (!whole && request.size() <= kMaxRequest) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      request.append(buf, static_cast<size_t>(n));
      whole = request.find("\r\n\r\n") != std::string::npos || request.find("\n\n") != std::string::npos;
      continue;
    }
    if (n == 0) return;  // it went away
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return;
    if (!wait_for(fd, POLLIN, stop_.get(), read_deadline)) {
      if (Clock::now() < read_deadline) return;  // the responder stops
      r = {408, "text/plain; charset=utf-8", "request not received within 2 s\n"};
      break;
    }
  }
  bool head = false;
  if (whole && request.size() <= kMaxRequest + sizeof buf) {
    // METHOD SP TARGET SP HTTP/1.x
    const std::string_view line = std::string_view(request).substr(0, request.find_first_of("\r\n"));
    const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    const std::string_view method = line.substr(0, sp1);
    if (sp1 == std::string_view::npos || sp2 == sp1 || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      r = {400, "text/plain; charset=utf-8", "malformed request line\n"};
    } else if (method != "GET" && method != "HEAD") {
      r = {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
    } else {
      head = method == "HEAD";
      std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      target = target.substr(0, target.find('?'));
      r = handler_(target);
    }
  } else if (r.status == 200) {
    r = {431, "text/plain; charset=utf-8", "request larger than " + std::to_string(kMaxRequest) + " bytes\n"};
  }
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
                    "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                    "\r\nConnection: close\r\n";
  if (r.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head) out += r.body;
  send_all(fd, stop_.get(), out, Clock::now() + kWriteTimeout);
  // The request's unread rest (an oversized header) would make close() send a reset
  // that can overtake the answer: say we are done writing, then close.
  ::shutdown(fd, SHUT_WR);
}

}  // namespace shoal::cli
