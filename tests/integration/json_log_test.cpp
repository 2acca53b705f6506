// --log-format json as a log shipper reads it: every line agentkv writes is
// one JSON object, also when llama-server writes bytes that are not UTF-8
// and a client sends control bytes in a query string.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

TEST(JsonLog, EveryLineParsesWhateverLlamaServerOrAClientWrote) {
  const fs::path dir =
      fs::temp_directory_path() / ("agentkv-jsonlog-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // llama-server, preceded by a line cut inside "ü" and a stray byte.
  const fs::path wrapper = dir / "llama-server";
  std::ofstream(wrapper) << "#!/bin/sh\nprintf 'cut \\303 stray \\377 end\\n' >&2\nexec '"
                         << testing::LlamaServerBinary().string() << "' \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  testing::AgentkvProcess agentkv(
      {"--memory-dir", (dir / "memory").string(), "--model", testing::TestModel().string(),
       "--llama-server", wrapper.string(), "--log-format", "json", "--", "--threads", "1"},
      {});
  httplib::Client c("127.0.0.1", agentkv.port());
  ASSERT_TRUE(c.Get("/v1/models?q=\x01\xff"));
  EXPECT_EQ(agentkv.Terminate(), 0);

  std::istringstream lines(agentkv.log());
  int parsed = 0;
  bool saw_garbage = false;
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    const std::string msg = j["msg"];
    saw_garbage |= msg.find("cut \xef\xbf\xbd stray \xef\xbf\xbd end") != std::string::npos;
    ++parsed;
  }
  EXPECT_GT(parsed, 5);
  EXPECT_TRUE(saw_garbage) << "llama-server's line, its bad bytes replaced by U+FFFD";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv
