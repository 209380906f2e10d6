// The HTTP/1.1 responder behind `--metrics`: one thread, one short request at a time.
// It serves watchers (Prometheus, a load balancer's health check), not the public: a
// request is at most kMaxRequest bytes and must arrive whole within kReadTimeout, the
// answer must be taken within kWriteTimeout, and every connection is closed after one
// answer. A client that sends nothing, sends garbage or never reads only delays the next
// scrape by those bounds; the pool and the host's main loop never wait on it.
#ifndef SHOAL_CLI_METRICS_HTTP_HPP
#define SHOAL_CLI_METRICS_HTTP_HPP

#include "common/fd.hpp"

#include <shoal/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace shoal::cli {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpResponder {
 public:
  static constexpr size_t kMaxRequest = 8 * 1024;
  static constexpr auto kReadTimeout = std::chrono::seconds(2);
  static constexpr auto kWriteTimeout = std::chrono::seconds(2);

  /// Answers a GET (or HEAD) of `path` (the query string cut off). Runs on the
  /// responder's thread.
  using Handler = std::function<HttpResponse(std::string_view path)>;

  /// Binds `listen` (HOST:PORT, [IPV6]:PORT, :PORT or PORT; no host: 127.0.0.1) and
  /// starts the thread. `named` says where the address came from ("--metrics", or
  /// "metrics.listen at FILE:LINE:COLUMN") for the one-line error when it is malformed
  /// or cannot be bound (in use, not an address of this host).
  static Result<std::unique_ptr<HttpResponder>> start(const std::string& listen, const std::string& named,
                                                      Handler handler);
  ~HttpResponder();  // stops the thread; a request being answered is cut off
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;

  /// The bound address as a URL prefix, e.g. "http://127.0.0.1:40123" (the port that port
  /// 0 chose).
  const std::string& url() const { return url_; }

 private:
  HttpResponder(detail::Fd listener, detail::Fd stop, std::string url, Handler handler);
  void serve();
  void answer(int fd);

  detail::Fd listener_, stop_;
  std::string url_;
  Handler handler_;
  std::thread thread_;
};

}  // namespace shoal::cli

#endif
