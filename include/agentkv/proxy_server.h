#pragma once
// The http front: the only code that knows HTTP on the client side. Resolves
// the agent, asks the Placer for a slot, forwards the request to llama-server
// pinned to that slot and streams the answer back chunk by chunk.
// Bind() and Serve() are called once; Stop() may be called from any thread.

#include <cstddef>
#include <memory>
#include <string>

#include "agentkv/placer.h"
#include "agentkv/upstream.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace agentkv {

struct ProxyOptions {
  std::string host = "127.0.0.1";
  int port = 8090;                            // 0: any free port
  std::size_t max_body_bytes = 16u << 20;
  // Connections served at once. Every waiting or streaming request holds
  // one; the Daemon sizes it as slots + queue + a margin when left at 0.
  int threads = 0;
};

class ProxyServer {
 public:
  ProxyServer(ProxyOptions options, Upstream& upstream, Placer& placer);
  ~ProxyServer();

  // Returns the bound port, or kIo if the address cannot be bound.
  Result<int> Bind();
  // Serves until Stop(). Blocks.
  void Serve();
  // True once Serve() accepts connections; Stop() before that is lost.
  bool running() const;
  void Stop();

 private:
  struct Exchange;
  Result<int> BindPort();
  void Handle(const httplib::Request& req, httplib::Response& res);
  void HandleInference(const httplib::Request& req, httplib::Response& res,
                       const std::string& upstream_target,
                       const std::optional<std::string>& path_agent);
  // Forwards `request` on a worker thread that holds `lease` until the
  // upstream answer is complete.
  std::shared_ptr<Exchange> Start(ForwardRequest request, std::optional<Lease> lease);
  // Writes the exchange's answer to `res`: streamed if it is an event stream.
  void Respond(std::shared_ptr<Exchange> ex, httplib::Response& res);

  ProxyOptions options_;
  Upstream& upstream_;
  Placer& placer_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace agentkv
