#include "app/status_view.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace agentkv {
namespace {

using nlohmann::json;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The first line that starts with `prefix`, or "".
std::string LineStarting(const std::string& text, const std::string& prefix) {
  for (const std::string& l : Lines(text)) {
    if (l.rfind(prefix, 0) == 0) return l;
  }
  return "";
}

const json kStatus = json::parse(R"({
  "now": 1700000060000, "upstream_up": true, "persistence": true,
  "totals": {"agents": 1234, "resident": 1, "slots": 2, "waiting": 0, "restores": 7,
             "saves": 9, "save_failures": 1, "evictions": 3, "fallbacks": 2, "resets": 0,
             "quarantined": 1, "quarantine_files": 1, "quarantine_bytes": 2048,
             "upstream_restarts": 0, "tokens_reused": 300, "tokens_prefilled": 100,
             "prefix_hits": 0, "agents_on_disk": 1233, "bytes_on_disk": 45600000,
             "disk_budget_bytes": 100000000},
  "slots": [{"slot": 0, "state": "busy", "agent": "planner", "tokens": 1201, "dirty": false,
             "pinned": false, "since": 1700000058000, "for_ms": 2000},
            {"slot": 1, "state": "free", "agent": null, "tokens": null, "dirty": false,
             "pinned": false, "since": 1700000000000, "for_ms": 60000}],
  "agents": {"total": 1234, "offset": 0, "limit": 20, "sort": "last_used", "filter": "",
             "items": [{"id": "planner", "resident": true, "slot": 0, "pinned": true,
                        "dirty": true, "tokens": 1201, "saved_bytes": 27000000,
                        "last_used": 1700000055000, "requests": 4,
                        "placements": {"cold": 1, "restored": 2, "resident": 1},
                        "tokens_reused": 3600, "tokens_prefilled": 1300, "reuse": 0.7346,
                        "last_finish": "tool_calls", "next": "tool"},
                       {"id": "coder", "resident": false, "slot": null, "pinned": false,
                        "dirty": false, "tokens": 80, "saved_bytes": 2000,
                        "last_used": null, "requests": 0, "placements": {},
                        "tokens_reused": 0, "tokens_prefilled": 0, "reuse": null}]},
  "ttft": {"bucket_ms": 10000, "buckets": []},
  "recent": [{"at": 1700000055000, "agent": "planner", "slot": 0, "placement": "restored",
              "status": 200, "cache_n": 1201, "prompt_n": 1, "ttft_ms": 42, "ms": 180},
             {"at": 1700000050000, "agent": null, "slot": 1, "placement": "stateless",
              "status": 200, "cache_n": 0, "prompt_n": 12, "ttft_ms": null, "ms": 30}]
})");

TEST(StatusView, SummarizesTheTotalsOnTwoLines) {
  const std::string text = RenderStatusText(kStatus, "http://127.0.0.1:8090");
  const std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_NE(lines[0].find("agentkv at http://127.0.0.1:8090 · llama-server up"), std::string::npos);
  EXPECT_NE(lines[1].find("agents 1,234 (1 resident, 1,233 on disk)"), std::string::npos)
      << lines[1];
  EXPECT_NE(lines[1].find("disk 46 MB of 100 MB budget"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("restores 7 · saves 9 (1 failed)"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("fallbacks 2 · quarantined 1 (1 files, 2.0 KB)"), std::string::npos)
      << lines[2];
  EXPECT_NE(lines[2].find("reuse 75%"), std::string::npos) << lines[2];
}

TEST(StatusView, ListsSlotsAgentsAndRecentRequestsInAlignedColumns) {
  const std::string text = RenderStatusText(kStatus, "u");
  const std::string header = LineStarting(text, "SLOT");
  const std::string busy = LineStarting(text, "0 ");
  ASSERT_FALSE(busy.empty()) << text;
  EXPECT_EQ(busy.find("busy"), header.find("STATE"));
  EXPECT_EQ(busy.find("planner"), header.find("AGENT"));
  EXPECT_EQ(busy.find("1,201") + 5, header.find("TOKENS") + 6) << "numbers align right";
  EXPECT_NE(busy.find("2 s"), std::string::npos);

  const std::string planner = LineStarting(text, "planner");
  EXPECT_NE(planner.find("slot 0* (pinned)"), std::string::npos) << planner;
  EXPECT_NE(planner.find("27 MB"), std::string::npos);
  EXPECT_NE(planner.find("5 s ago"), std::string::npos);
  EXPECT_NE(planner.find("1 resident, 2 restored, 1 cold"), std::string::npos) << planner;
  EXPECT_NE(planner.find("73%"), std::string::npos);
  EXPECT_EQ(planner.find("tool_calls, next tool"), LineStarting(text, "AGENT").find("LAST TURN"))
      << text;
  const std::string coder = LineStarting(text, "coder");
  EXPECT_NE(coder.find("disk"), std::string::npos) << coder;
  EXPECT_NE(text.find("(2 of 1,234 agents"), std::string::npos);

  const std::string recent = LineStarting(text, "TIME");
  EXPECT_NE(recent.find("CACHE_N"), std::string::npos);
  EXPECT_NE(text.find("(stateless)"), std::string::npos);
}

TEST(StatusView, ShowsADashForWhatItLacksAndNeverThrows) {
  for (const json& j : {json::object(), json(nullptr), json::array(),
                        json{{"totals", "x"}, {"slots", 3}, {"agents", {{"items", "y"}}}}}) {
    std::string text;
    EXPECT_NO_THROW(text = RenderStatusText(j, "u")) << j;
    EXPECT_NE(text.find("agentkv at u · llama-server DOWN"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace agentkv
