#include "http/admin_api.h"

#include <nlohmann/json.hpp>
#include <set>

#include "agentkv/version.h"
#include "core/prefixes.h"

namespace agentkv {

using nlohmann::json;

namespace {

Status NotFound(const std::string& what) { return Status::Error(ErrorCode::kNotFound, what); }

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
  store_.Refresh(agent);  // a shared directory: what the other nodes saved counts
  if (std::optional<MemoryInfo> m = store_.Find(agent)) {
    j["saved"] = {{"tokens", m->tokens ? json(*m->tokens) : json(nullptr)},
                  {"bytes", m->bytes},
                  {"created", m->created},
                  {"updated", m->updated},
                  {"last_used", m->last_used}};
  } else {
    j["saved"] = nullptr;
  }
  j["last_turn"] = status_ ? status_->LastTurn(agent) : json(nullptr);
  return j;
}

Result<json> AdminApi::Handle(AdminAction action, const std::optional<AgentId>& agent,
                              const std::string& body, const std::string& query) {
  switch (action) {
    case AdminAction::kStats:
      return Stats();
    case AdminAction::kStatus: {
      if (!status_) return NotFound("no status report here");
      Result<StatusQuery> q = ParseStatusQuery(query);
      if (!q.ok()) return q.status();
      return status_->Render(q.value());
    }
    case AdminAction::kListAgents: {
      Result<StatusQuery> q = ParseStatusQuery(query);
      if (!q.ok()) return q.status();
      return ListAgents(q->offset, q->limit, q->filter);
    }
    case AdminAction::kListPrefixes:
      return ListPrefixes();
    case AdminAction::kDeletePrefix:
      if (!agent) break;
      return DeletePrefix(*agent);
    case AdminAction::kNone:
      break;
    default:
      if (!agent) break;  // the route table gives every other action an id
      return HandleAgent(action, *agent, body);
  }
  return Status::Error(ErrorCode::kInternal, "admin action without its route");
}

json AdminApi::Stats() const {
  const PlacerStats s = placer_.stats();
  return json{{"version", Version()},
              {"restores", s.restores},
              {"saves", s.saves},
              {"save_failures", s.save_failures},
              {"evictions", s.evictions},
              {"fallbacks", s.fallbacks},
              {"resets", s.resets},
              {"prefix_hits", metrics_.prefix_hits.load()},
              {"superseded", metrics_.superseded.load()},
              {"prefix_tokens_reused", metrics_.prefix_tokens_reused.load()},
              {"prefix_snapshots_written", metrics_.prefix_snapshots.load()},
              {"prefix_snapshots_from_memory", metrics_.prefix_snapshots_from_memory.load()},
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

json AdminApi::ListAgents(std::size_t offset, std::size_t limit, const std::string& filter) const {
  std::vector<AgentId> resident;
  for (int i = 0; i < pool_.slot_count(); ++i) {
    const SlotView v = pool_.View(SlotId{i});
    if (v.owner && v.phase != SlotPhase::kFree) resident.push_back(*v.owner);
  }
  const StoreIndex::IdPage page = store_.PageOfIds(filter, offset, limit, resident);
  json list = json::array();
  for (const AgentId& agent : page.ids) list.push_back(Describe(agent));
  return json{{"agents", list}, {"total", page.total}, {"offset", offset}, {"limit", limit}};
}

// A snapshot is listed by its internal id without the "~", which no client
// id can start with; DELETE takes it back the same way.
json AdminApi::ListPrefixes() const {
  json list = json::array();
  for (const MemoryInfo& m : store_.List()) {
    std::optional<SnapshotKey> key = Prefixes::Parse(m.agent);
    if (!key) continue;
    list.push_back({{"id", m.agent.str().substr(1)},
                    {"scope", key->scope},
                    {"tokens", key->length},
                    {"bytes", m.bytes},
                    {"created", m.created},
                    {"last_used", m.last_used}});
  }
  return json{{"prefixes", list}};
}

Result<json> AdminApi::DeletePrefix(const AgentId& listed) {
  const Status none = NotFound("no prefix " + listed.str());
  if (listed.str().size() >= AgentId::kMaxLength) return none;
  const AgentId id = AgentId::Internal(listed.str());
  if (!Prefixes::Parse(id)) return none;
  Result<bool> removed = store_.Remove(id);
  if (!removed.ok()) return removed.status();
  if (!removed.value()) return none;
  return json{{"id", listed.str()}, {"deleted", true}};
}

ClaimHold AdminApi::Claim(const AgentId& agent, const std::string& scope) {
  store_.Claim(agent, scope);
  return ClaimHold([this, agent] {
    store_.Unclaim(agent, pool_.SlotOf(agent).has_value());
    if (store_.ClaimCount() > 2 * claims_swept_at_.load() + 1024) {
      claims_swept_at_ =
          store_.SweepClaims([this](const AgentId& a) { return pool_.SlotOf(a).has_value(); });
    }
  });
}

Status AdminApi::CheckOwner(const AgentId& agent, const std::string& scope) const {
  const std::optional<std::string> owner = store_.ScopeOf(agent);
  if (!owner || *owner == scope) return Status::Ok();
  if (owner->empty() && scope == Prefixes::ScopeOf("")) return Status::Ok();
  return Status::Error(ErrorCode::kForbidden,
                       "agent " + agent.str() + " belongs to another API key");
}

Status AdminApi::Spawn(const AgentId& child, const AgentId& parent, const std::string& scope) {
  if (Known(child)) return Status::Ok();
  if (!Known(parent)) return NotFound("no agent " + parent.str() + " to start from");
  if (Status s = CheckOwner(parent, scope); !s.ok()) return s;
  if (child == parent) return Status::Ok();
  return memory_.Fork(parent, child);
}

bool AdminApi::Known(const AgentId& agent) const {
  if (pool_.SlotOf(agent)) return true;
  store_.Refresh(agent);  // a shared directory: what the other nodes saved counts
  return store_.HasMemory(agent);
}

Result<json> AdminApi::HandleAgent(AdminAction action, const AgentId& id, const std::string& body) {
  switch (action) {
    case AdminAction::kGetAgent:
      if (!Known(id)) return NotFound("no agent " + id.str());
      return Describe(id);
    case AdminAction::kDelete: {
      if (Status s = memory_.Forget(id); !s.ok()) return s;
      if (status_) status_->Forget(id);
      return json{{"id", id.str()}, {"deleted", true}};
    }
    case AdminAction::kWarm:
      return Warm(id);
    case AdminAction::kFork:
      return Fork(id, body);
    case AdminAction::kPin:
      if (!Known(id)) return NotFound("no agent " + id.str() + " to pin");
      if (Status s = pool_.Pin(id); !s.ok()) return s;
      return Describe(id);
    case AdminAction::kUnpin:
      pool_.Unpin(id);
      return Describe(id);
    default:
      return Status::Error(ErrorCode::kInternal, "not an action on one agent");
  }
}

Result<json> AdminApi::Warm(const AgentId& id) {
  if (!Known(id)) return NotFound("no memory of agent " + id.str());
  Result<Lease> lease = placer_.Place(id);
  if (!lease.ok()) return lease.status();
  const Placement placement = lease->placement();
  lease->Release(TurnEnd::Unchanged());  // nothing ran: the KV is what was placed
  json j = Describe(id);
  j["placement"] = PlacementName(placement);
  return j;
}

Result<json> AdminApi::Fork(const AgentId& id, const std::string& body) {
  const json b = json::parse(body, nullptr, false);
  if (!b.is_object() || !b.contains("into") || !b["into"].is_string()) {
    return Status::Error(ErrorCode::kInvalidArgument, "fork needs a body {\"into\": \"<id>\"}");
  }
  Result<AgentId> child = AgentId::ParseQualified(b["into"].get<std::string>());
  if (!child.ok()) return child.status();
  if (child.value() == id) {
    return Status::Error(ErrorCode::kInvalidArgument, "an agent cannot fork into itself");
  }
  if (Status s = memory_.Fork(id, child.value()); !s.ok()) return s;
  return Describe(child.value());
}

}  // namespace agentkv
