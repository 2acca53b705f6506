#include "app/status_view.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

namespace agentkv {

using nlohmann::json;

namespace {

constexpr const char* kPlacements[] = {"resident", "restored", "prefix", "cold", "stateless"};

// The number at `key`, or nullopt if absent or not a number.
std::optional<double> Number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

std::string Count(const json& j, const char* key) {
  const std::optional<double> v = Number(j, key);
  if (!v) return "-";
  // Thousands separated by commas, as the page shows them.
  std::string digits = std::to_string(static_cast<long long>(*v));
  const bool negative = !digits.empty() && digits[0] == '-';
  for (int i = static_cast<int>(digits.size()) - 3; i > (negative ? 1 : 0); i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

std::string Bytes(std::optional<double> v) {
  if (!v) return "-";
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double x = *v;
  int i = 0;
  while (x >= 1000 && i < 4) {
    x /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f %s" : (x < 10 ? "%.1f %s" : "%.0f %s"), x,
                units[i]);
  return buf;
}

std::string Duration(std::optional<double> ms) {
  if (!ms || *ms < 0) return "-";
  const long long s = std::llround(*ms / 1000);
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min";
  if (s < 86400) return std::to_string(s / 3600) + " h";
  return std::to_string(s / 86400) + " d";
}

std::string Clock(std::optional<double> unix_ms) {
  if (!unix_ms) return "-";
  const time_t t = static_cast<time_t>(*unix_ms / 1000);
  struct tm local {};
  localtime_r(&t, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

std::string Percent(std::optional<double> ratio) {
  if (!ratio) return "-";
  return std::to_string(std::lround(*ratio * 100)) + "%";
}

std::string Text(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "-";
  std::string s = j[key].get<std::string>();
  // Ids are long at most 145 characters; a table stays readable at 40.
  return s.size() <= 40 ? s : s.substr(0, 39) + "~";
}

// Columns padded to their widest cell; those whose header starts with '>'
// are right-aligned (numbers).
class Table {
 public:
  explicit Table(std::vector<std::string> headers) {
    for (std::string& h : headers) {
      right_.push_back(!h.empty() && h[0] == '>');
      if (right_.back()) h.erase(0, 1);
    }
    rows_.push_back(std::move(headers));
  }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const {
    std::vector<std::size_t> width(right_.size(), 0);
    for (const auto& row : rows_) {
      for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
        width[i] = std::max(width[i], row[i].size());
      }
    }
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < width.size(); ++i) {
        const std::string cell = i < row.size() ? row[i] : "";
        const std::string pad(width[i] - cell.size(), ' ');
        line += right_[i] ? pad + cell : cell + pad;
        if (i + 1 < width.size()) line += "  ";
      }
      line.erase(line.find_last_not_of(' ') + 1);
      out << line << "\n";
    }
  }

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

void PrintTotals(std::ostream& out, const json& t) {
  const std::optional<double> budget = Number(t, "disk_budget_bytes");
  const double reused = Number(t, "tokens_reused").value_or(0);
  const double seen = reused + Number(t, "tokens_prefilled").value_or(0);
  out << "slots " << Count(t, "resident") << "/" << Count(t, "slots") << " in use, "
      << Count(t, "waiting") << " waiting · agents " << Count(t, "agents") << " ("
      << Count(t, "resident") << " resident, " << Count(t, "agents_on_disk") << " on disk) · disk "
      << Bytes(Number(t, "bytes_on_disk"))
      << (budget && *budget > 0 ? " of " + Bytes(budget) + " budget" : " (no budget)") << "\n";
  out << "restores " << Count(t, "restores") << " · saves " << Count(t, "saves") << " ("
      << Count(t, "save_failures") << " failed) · evictions " << Count(t, "evictions")
      << " · fallbacks " << Count(t, "fallbacks") << " · quarantined " << Count(t, "quarantined")
      << " (" << Count(t, "quarantine_files") << " files, " << Bytes(Number(t, "quarantine_bytes"))
      << ") · upstream restarts " << Count(t, "upstream_restarts") << " (" << Count(t, "resets")
      << " slot resets) · reuse " << (seen > 0 ? Percent(reused / seen) : "-") << "\n";
}

void PrintSlots(std::ostream& out, const json& slots) {
  Table table({"SLOT", "STATE", "AGENT", ">TOKENS", "SINCE"});
  for (const json& s : slots.is_array() ? slots : json::array()) {
    table.Add({Count(s, "slot"), Text(s, "state") + (s.value("dirty", false) ? " (unsaved)" : ""),
               s.contains("agent") && s["agent"].is_string() ? Text(s, "agent") : "-",
               Count(s, "tokens"), Duration(Number(s, "for_ms"))});
  }
  table.Print(out);
}

std::string Placements(const json& p) {
  std::string out;
  for (const char* name : kPlacements) {
    const std::optional<double> n = Number(p, name);
    if (!n || *n <= 0) continue;
    out += (out.empty() ? "" : ", ") + Count(p, name) + " " + name;
  }
  return out.empty() ? "-" : out;
}

// How the agent's last turn ended, and what its client said of the next.
std::string LastTurn(const json& a) {
  if (!a.contains("last_finish") || !a["last_finish"].is_string()) return "-";
  std::string out = Text(a, "last_finish");
  if (a.contains("next") && a["next"].is_string()) out += ", next " + Text(a, "next");
  return out;
}

void PrintAgents(std::ostream& out, const json& agents, std::optional<double> now) {
  Table table({"AGENT", "WHERE", ">TOKENS", ">SAVED", "LAST USE", ">REQUESTS", "PLACEMENTS",
               ">REUSE", "LAST TURN"});
  const json items = agents.is_object() && agents.contains("items") ? agents["items"] : json();
  for (const json& a : items.is_array() ? items : json::array()) {
    const std::optional<double> slot = Number(a, "slot");
    std::string where = a.value("resident", false) && slot
                            ? "slot " + Count(a, "slot") + (a.value("dirty", false) ? "*" : "")
                            : "disk";
    if (a.value("pinned", false)) where += " (pinned)";
    const std::optional<double> last = Number(a, "last_used");
    table.Add({Text(a, "id"), where, Count(a, "tokens"), Bytes(Number(a, "saved_bytes")),
               last && now ? Duration(*now - *last) + " ago" : "-", Count(a, "requests"),
               Placements(a.contains("placements") ? a["placements"] : json()),
               Percent(Number(a, "reuse")), LastTurn(a)});
  }
  table.Print(out);
  out << "(" << items.size() << " of " << Count(agents, "total")
      << " agents, most recently used first; * unsaved)\n";
}

void PrintRecent(std::ostream& out, const json& recent) {
  Table table({"TIME", "AGENT", ">SLOT", "PLACEMENT", ">STATUS", ">CACHE_N", ">PROMPT_N",
               ">TTFT_MS", ">MS"});
  for (const json& r : recent.is_array() ? recent : json::array()) {
    table.Add({Clock(Number(r, "at")),
               r.contains("agent") && r["agent"].is_string() ? Text(r, "agent") : "(stateless)",
               Count(r, "slot"), Text(r, "placement"), Count(r, "status"), Count(r, "cache_n"),
               Count(r, "prompt_n"), Count(r, "ttft_ms"), Count(r, "ms")});
  }
  table.Print(out);
}

}  // namespace

std::string RenderStatusText(const json& s, const std::string& url) {
  std::ostringstream out;
  const json empty = json::object();
  auto part = [&](const char* key) -> const json& {
    return s.is_object() && s.contains(key) ? s[key] : empty;
  };
  const bool up = s.is_object() && s.value("upstream_up", false);
  out << "agentkv at " << url << " · llama-server " << (up ? "up" : "DOWN") << " · "
      << Clock(Number(s, "now"))
      << (s.is_object() && !s.value("persistence", true) ? " · memory off (stateless)" : "")
      << "\n";
  PrintTotals(out, part("totals"));
  out << "\n";
  PrintSlots(out, part("slots"));
  out << "\n";
  PrintAgents(out, part("agents"), Number(s, "now"));
  if (part("recent").is_array() && !part("recent").empty()) {
    out << "\n";
    PrintRecent(out, part("recent"));
  }
  return out.str();
}

}  // namespace agentkv
