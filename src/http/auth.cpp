#include "http/auth.h"

#include "core/prefixes.h"

namespace agentkv {

namespace {

// Compares secrets in time independent of where they differ.
bool SameSecret(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0 && !expected.empty();
}

}  // namespace

std::string ApiKeyOf(const AuthPolicy& policy, const std::string& authorization) {
  if (policy.api_keys.empty() || authorization.rfind("Bearer ", 0) != 0) return "";
  return authorization.substr(7);
}

std::string ScopeOfRequest(const AuthPolicy& policy, const std::string& authorization) {
  const std::string key = ApiKeyOf(policy, authorization);
  for (std::size_t i = 0; i < policy.api_keys.size() && i < policy.tenants.size(); ++i) {
    if (!policy.tenants[i].empty() && SameSecret(key, policy.api_keys[i])) {
      return Prefixes::ScopeOfTenant(policy.tenants[i]);
    }
  }
  return Prefixes::ScopeOf(key);
}

Status Authorize(const AuthPolicy& policy, RouteKind kind, const std::string& authorization) {
  const bool open_route = (kind == RouteKind::kLiveness || kind == RouteKind::kReadiness)
                              ? !policy.health_needs_key
                              : kind == RouteKind::kMetrics && !policy.metrics_need_key;
  // Browsers send a preflight without credentials; it runs nothing.
  if (open_route || kind == RouteKind::kPreflight) return Status::Ok();
  const std::string token = authorization.rfind("Bearer ", 0) == 0 ? authorization.substr(7) : "";
  if (kind == RouteKind::kGlobal) {
    if (policy.admin_key.empty()) {
      return Status::Error(ErrorCode::kForbidden,
                           "this llama-server route acts for every agent: it needs the admin "
                           "key, and none is set (--admin-key-file)");
    }
    return SameSecret(token, policy.admin_key)
               ? Status::Ok()
               : Status::Error(ErrorCode::kUnauthorized,
                               "this llama-server route acts for every agent: it needs the "
                               "admin key");
  }
  if (kind == RouteKind::kStatusPage) {
    if (policy.admin_key.empty() && !policy.api_keys.empty()) {
      return Status::Error(ErrorCode::kForbidden,
                           "the status page needs the admin API, which is disabled: API keys are "
                           "set but no admin key");
    }
    return Status::Ok();
  }
  if (kind == RouteKind::kAdmin) {
    if (!policy.admin_key.empty()) {
      return SameSecret(token, policy.admin_key)
                 ? Status::Ok()
                 : Status::Error(ErrorCode::kUnauthorized, "the admin API needs the admin key");
    }
    if (!policy.api_keys.empty()) {
      return Status::Error(ErrorCode::kForbidden,
                           "the admin API is disabled: API keys are set but no admin key");
    }
    return Status::Ok();
  }
  if (policy.api_keys.empty()) return Status::Ok();
  for (const std::string& key : policy.api_keys) {
    if (SameSecret(token, key)) return Status::Ok();
  }
  return Status::Error(ErrorCode::kUnauthorized, "missing or invalid API key");
}

}  // namespace agentkv
