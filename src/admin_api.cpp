#include "agentkv/admin_api.h"

#include <nlohmann/json.hpp>
#include <set>

namespace agentkv {

using nlohmann::json;

namespace {

Status NotFound(const std::string& what) { return Status::Error(ErrorCode::kNotFound, what); }

// Splits "/admin/agents/x/pin" into {"agents", "x", "pin"}.
std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 7;  // after "/admin/"
  while (start <= path.size()) {
    const size_t end = path.find('/', start);
    out.push_back(path.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

}  // namespace

json AdminApi::Describe(const AgentId& agent) const {
  json j = {{"id", agent.str()}, {"resident", false}, {"pinned", pool_.Pinned(agent)}};
  if (std::optional<SlotId> slot = pool_.SlotOf(agent)) {
    const SlotView v = pool_.View(*slot);
    j["resident"] = true;
    j["slot"] = slot->value;
    j["resident_tokens"] = v.tokens ? json(*v.tokens) : json(nullptr);
    j["dirty"] = v.dirty;
  }
  if (std::optional<MemoryInfo> m = store_.Find(agent)) {
    j["saved"] = {{"tokens", m->tokens},
                  {"bytes", m->bytes},
                  {"created", m->created},
                  {"updated", m->updated},
                  {"last_used", m->last_used}};
  } else {
    j["saved"] = nullptr;
  }
  return j;
}

Result<json> AdminApi::Handle(const std::string& method, const std::string& path,
                              const std::string& body) {
  const std::vector<std::string> seg = Segments(path);
  if (seg.size() == 1 && seg[0] == "stats" && method == "GET") {
    const PlacerStats s = placer_.stats();
    return json{
        {"restores", s.restores},
        {"saves", s.saves},
        {"save_failures", s.save_failures},
        {"evictions", s.evictions},
        {"fallbacks", s.fallbacks},
        {"resets", s.resets},
        {"quarantined", store_.quarantined()},
        {"quarantine_files", store_.quarantine_usage().files},
        {"quarantine_bytes", store_.quarantine_usage().bytes},
        {"bytes_on_disk", store_.TotalBytes()},
        {"agents_on_disk", store_.AgentCount()},
        {"persistence", serving_.persist},
        {"stateless_because", serving_.why_stateless},
        {"model",
         {{"arch", serving_.model.arch},
          {"sliding_window", serving_.model.sliding_window},
          {"swa_full", serving_.swa_full},
          {"swa_full_added_by_agentkv", serving_.swa_full_added},
          {"recurrent", serving_.model.recurrent},
          {"experts", serving_.model.expert_count},
          {"bytes_per_1k_tokens_on_disk", store_.bytes_per_1k_tokens()},
          {"kv_bytes_per_1k_tokens_in_ram",
           static_cast<long long>(serving_.kv_bytes_per_token * 1000)},
          {"kv_bytes_per_slot_in_ram", static_cast<long long>(serving_.kv_bytes_per_slot)}}}};
  }
  if (seg.empty() || seg[0] != "agents") return NotFound("no admin route " + path);
  if (seg.size() == 1 && method == "GET") {
    std::set<AgentId> agents;
    for (const MemoryInfo& m : store_.List()) agents.insert(m.agent);
    for (int i = 0; i < pool_.slot_count(); ++i) {
      const SlotView v = pool_.View(SlotId{i});
      if (v.owner && v.phase != SlotPhase::kFree) agents.insert(*v.owner);
    }
    json list = json::array();
    for (const AgentId& a : agents) list.push_back(Describe(a));
    return json{{"agents", list}};
  }
  if (seg.size() < 2) return NotFound("no admin route " + method + " " + path);
  Result<AgentId> agent = AgentId::Parse(seg[1]);
  if (!agent.ok()) return agent.status();
  const AgentId& id = agent.value();
  const std::string action = seg.size() > 2 ? seg[2] : "";

  if (action.empty() && method == "GET") {
    if (!pool_.SlotOf(id) && !store_.HasMemory(id)) return NotFound("no agent " + id.str());
    return Describe(id);
  }
  if (action.empty() && method == "DELETE") {
    Status s = placer_.Forget(id);
    if (!s.ok()) return s;
    return json{{"id", id.str()}, {"deleted", true}};
  }
  if (action == "warm" && method == "POST") {
    if (!pool_.SlotOf(id) && !store_.HasMemory(id))
      return NotFound("no memory of agent " + id.str());
    Result<Lease> lease = placer_.Place(id);
    if (!lease.ok()) return lease.status();
    const Placement placement = lease->placement();
    lease->Release(TurnEnd::Unchanged());  // nothing ran: the KV is what was placed
    json j = Describe(id);
    j["placement"] = PlacementName(placement);
    return j;
  }
  if (action == "fork" && method == "POST") {
    const json b = json::parse(body, nullptr, false);
    if (!b.is_object() || !b.contains("into") || !b["into"].is_string()) {
      return Status::Error(ErrorCode::kInvalidArgument, "fork needs a body {\"into\": \"<id>\"}");
    }
    Result<AgentId> child = AgentId::Parse(b["into"].get<std::string>());
    if (!child.ok()) return child.status();
    if (child.value() == id) {
      return Status::Error(ErrorCode::kInvalidArgument, "an agent cannot fork into itself");
    }
    Status s = placer_.Fork(id, child.value());
    if (!s.ok()) return s;
    return Describe(child.value());
  }
  if (action == "pin" && (method == "POST" || method == "DELETE")) {
    if (method == "POST" && !pool_.SlotOf(id) && !store_.HasMemory(id)) {
      return NotFound("no agent " + id.str() + " to pin");
    }
    if (method == "DELETE") {
      pool_.Unpin(id);
    } else if (Status s = pool_.Pin(id); !s.ok()) {
      return s;
    }
    return Describe(id);
  }
  return NotFound("no admin route " + method + " " + path);
}

}  // namespace agentkv
