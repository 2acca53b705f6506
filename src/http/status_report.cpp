#include "http/status_report.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "agentkv/version.h"

namespace agentkv {

using nlohmann::json;

namespace {

Status Invalid(const std::string& message) {
  return Status::Error(ErrorCode::kInvalidArgument, message);
}

// A count parameter: digits only, within [low, high].
Result<std::size_t> CountParam(const std::string& name, const std::string& value, std::size_t low,
                               std::size_t high) {
  const bool digits =
      !value.empty() && value.size() <= 9 &&
      std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  const std::size_t n = digits ? std::stoul(value) : 0;
  if (!digits || n < low || n > high) {
    return Invalid("status: " + name + " must be a number from " + std::to_string(low) + " to " +
                   std::to_string(high));
  }
  return n;
}

// %XX escapes decoded ('@' arrives as %40 from most clients); nullopt for a
// malformed one.
std::optional<std::string> Unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      return std::nullopt;
    }
    out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return out;
}

bool IdCharacters(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-' || c == '@';
  });
}

const std::map<std::string, StatusQuery::Sort>& Sorts() {
  static const std::map<std::string, StatusQuery::Sort> sorts = {
      {"last_used", StatusQuery::Sort::kLastUsed}, {"id", StatusQuery::Sort::kId},
      {"tokens", StatusQuery::Sort::kTokens},      {"bytes", StatusQuery::Sort::kBytes},
      {"requests", StatusQuery::Sort::kRequests},
  };
  return sorts;
}

std::string SortName(StatusQuery::Sort sort) {
  for (const auto& [name, s] : Sorts()) {
    if (s == sort) return name;
  }
  return "last_used";
}

const char* StateName(SlotPhase phase) {
  switch (phase) {
    case SlotPhase::kFree:
      return "free";
    case SlotPhase::kIdle:
      return "idle";
    case SlotPhase::kBusy:
      return "busy";
    case SlotPhase::kSwitching:
      return "switching";
    case SlotPhase::kSaving:
      return "saving";
  }
  return "unknown";
}

json Tokens(const TokenCount& t) { return t && *t >= 0 ? json(*t) : json(nullptr); }

// One agent as the list shows it, gathered from the slots, the store and
// the traffic record.
struct Row {
  std::optional<MemoryInfo> saved;
  std::optional<int> slot;
  SlotView view;
  AgentActivity activity;
  std::int64_t last_used = 0;  // unix ms, 0 if unknown
  long long tokens = -1;
  long long bytes = -1;
};

// The value the list is sorted by, largest (most recent) first; 0 for all
// when sorted by id.
long long Key(StatusQuery::Sort sort, const Row& r) {
  switch (sort) {
    case StatusQuery::Sort::kLastUsed:
      return r.last_used;
    case StatusQuery::Sort::kTokens:
      return r.tokens;
    case StatusQuery::Sort::kBytes:
      return r.bytes;
    case StatusQuery::Sort::kRequests:
      return r.activity.requests;
    case StatusQuery::Sort::kId:
      break;
  }
  return 0;
}

json Placements(const AgentActivity& a) {
  json p = json::object();
  for (std::size_t i = 0; i < kPlacementCount; ++i) {
    if (a.placements[i] > 0) p[PlacementName(static_cast<Placement>(i))] = a.placements[i];
  }
  return p;
}

json Item(const AgentId& id, const Row& r, bool pinned) {
  const long long seen = r.activity.tokens_reused + r.activity.tokens_prefilled;
  return {{"id", id.str()},
          {"resident", r.slot.has_value()},
          {"slot", r.slot ? json(*r.slot) : json(nullptr)},
          {"pinned", pinned},
          {"dirty", r.slot && r.view.dirty},
          {"tokens", r.tokens >= 0 ? json(r.tokens) : json(nullptr)},
          {"saved_bytes", r.saved ? json(r.saved->bytes) : json(nullptr)},
          {"last_used", r.last_used > 0 ? json(r.last_used) : json(nullptr)},
          {"requests", r.activity.requests},
          {"last_finish",
           r.activity.requests > 0 ? json(FinishName(r.activity.last_finish)) : json(nullptr)},
          {"next", r.activity.next ? json(NextHintText(*r.activity.next)) : json(nullptr)},
          {"placements", Placements(r.activity)},
          {"tokens_reused", r.activity.tokens_reused},
          {"tokens_prefilled", r.activity.tokens_prefilled},
          {"reuse", seen > 0 ? json(static_cast<double>(r.activity.tokens_reused) /
                                    static_cast<double>(seen))
                             : json(nullptr)}};
}

}  // namespace

Result<StatusQuery> ParseStatusQuery(const std::string& query) {
  StatusQuery q;
  std::size_t start = 0;
  while (start < query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    const std::string name = pair.substr(0, eq);
    const std::optional<std::string> unescaped =
        Unescape(eq == std::string::npos ? "" : pair.substr(eq + 1));
    if (!unescaped) return Invalid("status: a malformed %-escape in the query");
    const std::string& value = *unescaped;
    if (name == "offset" || name == "limit" || name == "recent") {
      const std::size_t low = name == "limit" ? 1 : 0;
      const std::size_t high = name == "limit"    ? StatusQuery::kMaxLimit
                               : name == "recent" ? 1000
                                                  : 100000000;
      Result<std::size_t> n = CountParam(name, value, low, high);
      if (!n.ok()) return n.status();
      (name == "offset" ? q.offset : name == "limit" ? q.limit : q.recent) = n.value();
    } else if (name == "filter") {
      if (value.size() > AgentId::kMaxLength + 17 || !IdCharacters(value)) {
        return Invalid("status: filter takes the characters of agent ids: [A-Za-z0-9._@-]");
      }
      q.filter = value;
    } else if (name == "sort") {
      const auto it = Sorts().find(value);
      if (it == Sorts().end()) {
        return Invalid("status: sort is one of last_used, id, tokens, bytes, requests");
      }
      q.sort = it->second;
    } else {
      return Invalid("status: unknown parameter '" + name +
                     "' (offset, limit, filter, sort, recent)");
    }
  }
  return q;
}

json StatusReport::Render(const StatusQuery& q) const {
  const std::vector<SlotStatus> slots = s_.pool.Snapshot();
  std::unordered_map<AgentId, std::size_t> slot_of;  // agents holding a slot
  std::vector<AgentId> holders;
  int resident = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const SlotView& v = slots[i].view;
    if (v.phase == SlotPhase::kFree || !v.owner) continue;
    ++resident;
    if (v.owner->internal()) continue;
    slot_of.emplace(*v.owner, i);
    holders.push_back(*v.owner);
  }
  const std::unordered_map<AgentId, AgentActivity> activity = s_.activity.Agents();

  // An agent as the list shows it: its memory (if any), slot and traffic.
  auto row_of = [&](const AgentId& id, const MemoryInfo* saved) {
    Row r;
    if (saved) {
      r.last_used = saved->last_used * 1000;
      r.tokens = saved->tokens.value_or(-1);
      r.bytes = saved->bytes;
    }
    if (auto it = slot_of.find(id); it != slot_of.end()) {
      const SlotView& v = slots[it->second].view;
      r.slot = static_cast<int>(it->second);
      r.view = v;
      if (v.tokens && *v.tokens >= 0) r.tokens = *v.tokens;
    }
    if (auto it = activity.find(id); it != activity.end()) {
      r.activity = it->second;
      r.last_used = std::max(r.last_used, it->second.last_ms);
    }
    return r;
  };
  // Every agent with memory is ranked, under the store's lock: the rank
  // reads only what was gathered above. The page's rows are built after.
  StoreIndex::Rank rank;
  if (q.sort != StatusQuery::Sort::kId) {
    rank = [&](const AgentId& id, const MemoryInfo* saved) {
      return Key(q.sort, row_of(id, saved));
    };
  }
  const StoreIndex::IdPage page = s_.store.PageOfIds(q.filter, q.offset, q.limit, holders, rank);
  json items = json::array();
  for (const AgentId& id : page.ids) {
    const std::optional<MemoryInfo> saved = s_.store.Find(id);
    Row r = row_of(id, saved ? &*saved : nullptr);
    r.saved = saved;
    items.push_back(Item(id, r, s_.pool.Pinned(id)));
  }
  std::size_t known = s_.store.AgentCount();
  for (const AgentId& id : holders) known += s_.store.HasMemory(id) ? 0 : 1;
  return {{"now", s_.activity.now_ms()},
          {"version", Version()},
          {"upstream_up", s_.upstream_up ? s_.upstream_up() : true},
          {"persistence", s_.persistence},
          {"totals", Totals(known, resident)},
          {"slots", Slots(slots)},
          {"agents",
           {{"total", page.total},
            {"offset", q.offset},
            {"limit", q.limit},
            {"sort", SortName(q.sort)},
            {"filter", q.filter},
            {"items", std::move(items)}}},
          {"ttft", Ttft()},
          {"recent", Recent(q.recent)}};
}

json StatusReport::LastTurn(const AgentId& agent) const {
  const std::optional<AgentActivity> a = s_.activity.Of(agent);
  if (!a) return nullptr;
  return {{"finish", FinishName(a->last_finish)},
          {"next", a->next ? json(NextHintText(*a->next)) : json(nullptr)},
          {"ended", a->last_ms},
          {"gap_ms", a->last_gap_ms >= 0 ? json(a->last_gap_ms) : json(nullptr)}};
}

json StatusReport::Totals(std::size_t known_agents, int resident) const {
  const PlacerStats p = s_.placer.stats();
  const QuarantineUsage quarantine = s_.store.quarantine_usage();
  return {{"agents", known_agents},
          {"resident", resident},
          {"slots", s_.pool.slot_count()},
          {"waiting", s_.pool.waiting()},
          {"restores", p.restores},
          {"saves", p.saves},
          {"save_failures", p.save_failures},
          {"evictions", p.evictions},
          {"fallbacks", p.fallbacks},
          {"resets", p.resets},
          {"quarantined", s_.store.quarantined()},
          {"quarantine_files", quarantine.files},
          {"quarantine_bytes", quarantine.bytes},
          {"upstream_restarts", s_.metrics.upstream_restarts.load()},
          {"tokens_reused", s_.metrics.tokens_reused.load()},
          {"tokens_prefilled", s_.metrics.tokens_prefilled.load()},
          {"prefix_hits", s_.metrics.prefix_hits.load()},
          {"agents_on_disk", s_.store.AgentCount()},
          {"bytes_on_disk", s_.store.TotalBytes()},
          {"disk_budget_bytes", s_.disk_budget_bytes}};
}

json StatusReport::Slots(const std::vector<SlotStatus>& slots) const {
  const std::int64_t now_ms = s_.activity.now_ms();
  const TimePoint now = Clock::now();
  json out = json::array();
  int i = 0;
  for (const SlotStatus& s : slots) {
    const SlotView& v = s.view;
    const bool owned = v.phase != SlotPhase::kFree && v.owner;
    const long long for_ms = std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(now - s.since).count());
    out.push_back({{"slot", i++},
                   {"state", StateName(v.phase)},
                   {"agent", owned ? json(v.owner->str()) : json(nullptr)},
                   {"tokens", owned ? Tokens(v.tokens) : json(nullptr)},
                   {"dirty", owned && v.dirty},
                   {"pinned", owned && s_.pool.Pinned(*v.owner)},
                   {"since", now_ms - for_ms},
                   {"for_ms", for_ms}});
  }
  return out;
}

json StatusReport::Ttft() const {
  json buckets = json::array();
  for (const TtftBucket& b : s_.activity.Ttft()) {
    json j = {{"start", b.start_ms}};
    for (std::size_t i = 0; i < kPlacementCount; ++i) {
      const TtftBucket::Cell& c = b.by_placement[i];
      if (c.count == 0) continue;
      j[PlacementName(static_cast<Placement>(i))] = {
          {"count", c.count},
          {"avg_ms", c.sum_ms / static_cast<double>(c.count)},
          {"max_ms", c.max_ms}};
    }
    buckets.push_back(std::move(j));
  }
  return {{"bucket_ms", s_.activity.bucket_width().count()}, {"buckets", std::move(buckets)}};
}

json StatusReport::Recent(std::size_t n) const {
  json out = json::array();
  for (const RequestRecord& r : s_.activity.Recent(n)) {
    out.push_back({{"at", r.at_ms},
                   {"agent", r.agent ? json(r.agent->str()) : json(nullptr)},
                   {"slot", r.slot.value},
                   {"placement", PlacementName(r.placement)},
                   {"status", r.status},
                   {"cache_n", r.cache_n >= 0 ? json(r.cache_n) : json(nullptr)},
                   {"prompt_n", r.prompt_n >= 0 ? json(r.prompt_n) : json(nullptr)},
                   {"ttft_ms", r.ttft.count() >= 0 ? json(r.ttft.count()) : json(nullptr)},
                   {"ms", r.total.count()}});
  }
  return out;
}

}  // namespace agentkv
