// The http front's bounds: bodies counted while read, heads and nesting
// bounded, connections capped and deadlined, control routes always answered.
#include <gtest/gtest.h>
#include <httplib.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "component/fake_daemon_fixture.h"
#include "component/raw_client.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
using Clock = std::chrono::steady_clock;
using testing::BodyOf;
using testing::RawClient;
using testing::StatusOf;

class FrontTest : public testing::FakeDaemonTest {
 protected:
  // Opens `n` connections that each send half a request line and stall,
  // and waits until the daemon has taken them all in.
  void Stall(int n, int admitted_expected) {
    for (int i = 0; i < n; ++i) {
      stalled_.push_back(std::make_unique<RawClient>(daemon_->port()));
      ASSERT_TRUE(stalled_.back()->connected());
      ASSERT_TRUE(stalled_.back()->Send("GET /hea"));
    }
    ASSERT_TRUE(testing::Eventually([&] {
      return daemon_->front().Connections().open == admitted_expected;
    })) << daemon_->front().Connections().open;
  }
  std::vector<std::unique_ptr<RawClient>> stalled_;
};

TEST_F(FrontTest, AChunkedBodyOverTheLimitIs413BeforeTheClientHasSentIt) {
  Start(2, [](DaemonOptions& o) { o.proxy.max_body_bytes = 1 << 20; });
  RawClient c(daemon_->port());
  ASSERT_TRUE(
      c.Send("POST /v1/models HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";
  std::size_t sent = 0;
  const std::size_t total = 256u << 20;
  while (sent < total && c.SendUnlessAnswered(chunk)) sent += 0x10000;
  const std::string answer = c.ReadAll(std::chrono::seconds(10));
  EXPECT_EQ(StatusOf(answer), 413) << answer.substr(0, 200);
  EXPECT_EQ(BodyOf(answer)["error"]["code"], 413);
  // Had agentkv read the body whole before answering, the client would have
  // sent all of it; it is stopped within what the sockets' buffers hold.
  EXPECT_LT(sent, 64u << 20) << "agentkv read " << sent << " bytes of a body over 1 MiB";
  EXPECT_EQ(Client().Get("/healthz")->status, 200);
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

TEST_F(FrontTest, ARequestWithoutALengthHasNoBodyAndWhatFollowsIsNotRead) {
  // HTTP/1.1: no Content-Length and no Transfer-Encoding means no body
  // (httplib would read one until the client closes, whatever its size).
  Start(2, [](DaemonOptions& o) { o.proxy.max_body_bytes = 1 << 20; });
  RawClient c(daemon_->port());
  // POST /detokenize is read-only: passed to the fake, which has no such route.
  ASSERT_TRUE(c.Send("POST /detokenize HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
  const std::string piece(0x10000, ' ');
  std::size_t sent = 0;
  while (sent < (256u << 20) && c.SendUnlessAnswered(piece)) sent += piece.size();
  const std::string answer = c.ReadAll(std::chrono::seconds(10));
  EXPECT_EQ(StatusOf(answer), 404) << "the fake's answer to a POST /detokenize";
  EXPECT_LT(sent, 64u << 20);
}

TEST_F(FrontTest, AGzipBodyIsDecodedAndCountedAfterDecoding) {
  Start(2, [](DaemonOptions& o) { o.proxy.max_body_bytes = 1 << 20; });
  httplib::Client c = Client();
  c.set_compress(true);  // gzip, Content-Encoding: gzip
  httplib::Result small =
      c.Post("/agents/z/v1/chat/completions", Chat("z", "hello").dump(), "application/json");
  ASSERT_TRUE(small) << httplib::to_string(small.error());
  EXPECT_EQ(small->status, 200) << small->body;
  EXPECT_EQ(json::parse(fake_->last_body())["messages"][0]["content"], "agent:z|hello");
  json big = Chat("z", std::string(4 << 20, 'a'));  // about 4 KB once compressed
  httplib::Result res = c.Post("/agents/z/v1/chat/completions", big.dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413) << res->body;
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 413);
}

TEST_F(FrontTest, ABodyInAnEncodingThatIsNotDecodedIs415) {
  httplib::Result res = Client().Post("/v1/chat/completions", {{"Content-Encoding", "zstd"}},
                                      "(zstd bytes)", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 415);
}

TEST_F(FrontTest, DeeplyNestedJsonIs400AndSaysSo) {
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');  // 40 KB
  for (const char* path : {"/agents/a/v1/chat/completions", "/tokenize", "/admin/agents/a/fork"}) {
    httplib::Result res = Client().Post(path, deep, "application/json");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 400) << path << " " << res->body;
    // llama-server parses any body as JSON, whatever its Content-Type.
    res = Client().Post(path, deep, "text/plain");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 400) << path << " " << res->body;
    EXPECT_NE(
        json::parse(res->body)["error"]["message"].get<std::string>().find("nesting deeper than"),
        std::string::npos)
        << res->body;
  }
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

TEST_F(FrontTest, TooManyHeaderFieldsOrTooLargeAHeadAre431) {
  httplib::Headers many;
  for (int i = 0; i < 150; ++i) many.emplace("X-H" + std::to_string(i), "v");
  httplib::Result res = Client().Get("/healthz", many);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 431);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 431);

  httplib::Headers large;  // 20 fields of 4 KB: under the count, over 64 KiB
  for (int i = 0; i < 20; ++i) large.emplace("X-L" + std::to_string(i), std::string(4096, 'v'));
  res = Client().Get("/healthz", large);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 431);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 431);

  RawClient endless(daemon_->port());  // a request line that never ends
  ASSERT_TRUE(endless.Send("GET /" + std::string(100000, 'a')));
  const std::string answer = endless.ReadAll(std::chrono::seconds(10));
  EXPECT_EQ(StatusOf(answer), 431) << answer.substr(0, 200);
  EXPECT_EQ(Client().Get("/healthz")->status, 200);
}

TEST_F(FrontTest, AClientThatTricklesItsHeadIsAnswered408AtTheDeadline) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.connections.request_timeout = std::chrono::milliseconds(300);
  });
  RawClient c(daemon_->port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\n"));
  // A header line every 50 ms, each well within any per-read timeout, until
  // the daemon answers; without a deadline for the whole head it never does.
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < give_up && !c.Readable(std::chrono::milliseconds(50))) {
    ASSERT_TRUE(c.Send("X-Drip: 1\r\n"));
  }
  const std::string answer = c.ReadAll(std::chrono::seconds(5));
  EXPECT_EQ(StatusOf(answer), 408) << answer.substr(0, 200);
  EXPECT_EQ(BodyOf(answer)["error"]["code"], 408);
}

TEST_F(FrontTest, StalledClientsDoNotStopHealthzFromAnswering) {
  // A pool sized like the old one (slots + queue + 16 workers) would be
  // taken by these 40 clients for as long as their reads wait.
  Start(2, [](DaemonOptions& o) { o.queue.max_waiting = 4; });
  Stall(40, 40);
  httplib::Client c = Client();
  c.set_connection_timeout(std::chrono::seconds(5));
  c.set_read_timeout(std::chrono::seconds(5));
  httplib::Result res = c.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

TEST_F(FrontTest, PastTheConnectionCapRequestsGet503ButControlRoutesAnswer) {
  Start(2, [](DaemonOptions& o) { o.proxy.connections.max_connections = 2; });
  Stall(2, 2);
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "x"));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "2");
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 503);
  EXPECT_EQ(Client().Get("/healthz")->status, 200);
  EXPECT_EQ(Client().Get("/readyz")->status, 200);
  httplib::Result metrics = Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("agentkv_connections 2\n"), std::string::npos);
  stalled_.clear();
  ASSERT_TRUE(testing::Eventually([&] { return daemon_->front().Connections().open == 0; }));
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

TEST_F(FrontTest, PastThePerClientCapRequestsGet503) {
  Start(2, [](DaemonOptions& o) { o.proxy.connections.max_connections_per_client = 3; });
  Stall(3, 3);
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "x"));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(Client().Get("/healthz")->status, 200);
}

TEST_F(FrontTest, PastTheReserveTooAConnectionIsRefusedAtOnce) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.connections.max_connections = 2;
    o.proxy.connections.overflow_reserve = 0;
  });
  Stall(2, 2);
  RawClient c(daemon_->port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  const std::string answer = c.ReadAll(std::chrono::seconds(10));
  EXPECT_EQ(StatusOf(answer), 503) << answer.substr(0, 200);
  EXPECT_EQ(BodyOf(answer)["error"]["code"], 503);
}

TEST_F(FrontTest, ControlCharactersInAQueryStringAreEscapedInTheLog) {
  // spdlog's sink list may only change while no daemon thread logs.
  daemon_.reset();
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  Restart();
  RawClient c(daemon_->port());
  const std::string body = Chat("a", "x").dump();
  ASSERT_TRUE(
      c.Send("POST /agents/a/v1/chat/completions?q=\x1b[2J\rforged HTTP/1.1\r\nHost: localhost\r\n"
             "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body));
  const std::string answer = c.ReadAll(std::chrono::seconds(10));
  daemon_.reset();  // its request line is logged once the exchange ends
  spdlog::default_logger()->sinks().pop_back();
  ASSERT_EQ(StatusOf(answer), 200) << answer.substr(0, 200);
  EXPECT_NE(log.str().find("?q=\\x1b[2J\\x0dforged"), std::string::npos) << log.str();
  EXPECT_EQ(log.str().find('\x1b'), std::string::npos);
  EXPECT_EQ(log.str().find('\r'), std::string::npos);
}

TEST_F(FrontTest, AFlatBodyOfManySmallValuesIs413BeforeAnyOfItIsParsedOrForwarded) {
  Start(2, [](DaemonOptions& o) { o.proxy.max_json_values = 1000; });
  json body = Chat("a", "x");
  body["extra"] = json::array();
  for (int i = 0; i < 1000; ++i) body["extra"].push_back(0);
  httplib::Result res =
      Client().Post("/agents/a/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << res->body;
  EXPECT_NE(res->body.find("more than 1000 JSON values"), std::string::npos) << res->body;
  res = Client().Post("/tokenize", body.dump(), "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << "passthrough routes too: " << res->body;
  EXPECT_EQ(CountCalls("completion"), 0);
  body["extra"] = std::vector<int>(900, 0);
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", body)->status, 200);
}

TEST_F(FrontTest, APassthroughRouteHasASmallerBodyLimitThanInference) {
  Start(2, [](DaemonOptions& o) { o.proxy.max_passthrough_body_bytes = 64 << 10; });
  const json text = {{"content", std::string(100 << 10, 'a')}};
  httplib::Result res = Client().Post("/tokenize", text.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << res->body;
  EXPECT_NE(res->body.find("limit of 65536 bytes"), std::string::npos) << res->body;
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", std::string(100 << 10, 'a')))->status,
            200);
  res = Client().Post("/tokenize", json{{"content", "abc"}}.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["tokens"], json::array({97, 98, 99}));
}

TEST_F(FrontTest, AClientThatReadsTooSlowlyIsCutOffNotBufferedFor) {
  daemon_.reset();  // spdlog's sink list may only change while no daemon thread logs
  auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  spdlog::default_logger()->sinks().push_back(log);
  auto logged = [&](const std::string& text) {
    for (const std::string& line : log->last_formatted()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  };
  Start(2, [](DaemonOptions& o) {
    o.proxy.max_unsent_answer_bytes = 64 << 10;
    o.proxy.max_passthrough_body_bytes = 16 << 20;
  });
  // An answer of 24 MB, more than the sockets' buffers hold, to a client
  // that reads nothing until agentkv has given up on it.
  const std::string body = json{{"content", std::string(8 << 20, 'a')}}.dump();
  RawClient c(daemon_->port());
  ASSERT_TRUE(
      c.Send("POST /tokenize HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
             "application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body));
  const bool cut =
      testing::Eventually([&] { return logged("the client read the answer too slowly"); });
  const std::string answer = c.ReadAll(std::chrono::seconds(10));
  daemon_.reset();
  spdlog::default_logger()->sinks().pop_back();
  ASSERT_TRUE(cut);
  EXPECT_TRUE(logged("POST /tokenize: the client read the answer too slowly"));
  ASSERT_EQ(StatusOf(answer), 200) << answer.substr(0, 200);
  const std::size_t head = answer.find("\r\n\r\n") + 4;
  EXPECT_LT(answer.size() - head, 24u << 20) << "the answer ends cut short";
}

TEST_F(FrontTest, AFoldedHeaderIs400) {
  for (const char* fold : {" ", "\t"}) {
    RawClient c(daemon_->port());
    ASSERT_TRUE(
        c.Send(std::string("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Agent-Id: a\r\n") + fold +
               "b\r\nConnection: close\r\n\r\n"));
    const std::string answer = c.ReadAll(std::chrono::seconds(10));
    EXPECT_EQ(StatusOf(answer), 400) << answer.substr(0, 300);
    EXPECT_NE(answer.find("folded header"), std::string::npos) << answer;
  }
  RawClient c(daemon_->port());
  ASSERT_TRUE(
      c.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a b\tc\r\n"
             "Connection: close\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadAll(std::chrono::seconds(10))), 200) << "spaces inside a value are fine";
}

}  // namespace
}  // namespace agentkv
