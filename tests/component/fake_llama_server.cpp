#include "component/fake_llama_server.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace agentkv::testing {

using nlohmann::json;

namespace {

// The text a request asks the model to continue.
std::string PromptOf(const json& body) {
  if (body.contains("prompt") && body["prompt"].is_array()) {
    // Token ids: the fake's tokenizer maps each character to its code.
    std::string text;
    for (const json& t : body["prompt"]) text += static_cast<char>(t.get<int>());
    return text;
  }
  if (body.contains("prompt")) return body["prompt"].get<std::string>();
  std::string text;
  for (const json& m : body.value("messages", json::array())) {
    const json content = m.value("content", json());
    if (content.is_string()) text += content.get<std::string>();
    for (const json& part : content.is_array() ? content : json::array()) {
      text += part.value("text", "[" + part.value("type", "") + "]");
    }
    text += "\n";
  }
  return text;
}

std::string AgentTag(const std::string& text) {
  if (text.rfind("agent:", 0) != 0) return "";
  return text.substr(6, text.find('|') - 6);
}

size_t CommonPrefix(const std::string& a, const std::string& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

std::string Event(const json& j) { return "data: " + j.dump() + "\n\n"; }

}  // namespace

FakeLlamaServer::FakeLlamaServer(int slots, std::filesystem::path save_dir, int port)
    : save_dir_(std::move(save_dir)), kv_(static_cast<size_t>(slots)) {
  server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    ++health_checks_;
    if (!healthy_) res.status = 503;
    res.set_content(healthy_ ? R"({"status":"ok"})" : R"({"status":"loading"})",
                    "application/json");
  });
  const std::string model = (save_dir_ / "fake-model.gguf").string();
  std::ofstream(model) << "fake weights";
  server_.Get("/props", [slots, model](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"total_slots", slots},
                         {"model_path", model},
                         {"build_info", "fake"},
                         {"default_generation_settings", {{"n_ctx", 4096}}}}
                        .dump(),
                    "application/json");
  });
  server_.Get("/v1/models", [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Fake", "models");
    res.set_content(json{{"data", json::array()}, {"query", req.get_param_value("q")}}.dump(),
                    "application/json");
  });
  server_.Post("/slots/(\\d+)", [this](const httplib::Request& req, httplib::Response& res) {
    SlotAction(req, res);
  });
  // Routes that act for every agent: recorded, answered with nothing.
  auto global = [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({req.path, -1, "", ""});
    last_authorization_ = req.get_header_value("Authorization");
    res.set_content("[]", "application/json");
  };
  // The fake's tokenizer: each character's code. Written without a DOM, for
  // answers of many megabytes.
  server_.Post("/tokenize", [](const httplib::Request& req, httplib::Response& res) {
    const std::string content = json::parse(req.body).value("content", "");
    std::string answer = R"({"tokens":[)";
    for (std::size_t i = 0; i < content.size(); ++i) {
      if (i > 0) answer += ',';
      answer += std::to_string(static_cast<unsigned char>(content[i]));
    }
    res.set_content(answer + "]}", "application/json");
  });
  server_.Post("/lora-adapters", global);
  server_.Get("/slots", global);
  server_.Get("/v1/stream", global);
  // As llama-server with its default --cors-origins "*".
  server_.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("Access-Control-Allow-Origin", "*");
  });
  for (const char* path : {"/completion", "/v1/chat/completions"}) {
    server_.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      Completion(req, res);
    });
  }
  server_.set_tcp_nodelay(true);  // as agentkv's front: no 40 ms on kept-alive connections
  port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1")
                    : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  while (port_ > 0 && !server_.is_running()) std::this_thread::yield();
}

FakeLlamaServer::~FakeLlamaServer() {
  Resume();
  HangSaves(false);
  server_.stop();
  thread_.join();
}

void FakeLlamaServer::Set(const std::function<void()>& f) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    f();
  }
  changed_.notify_all();
}

bool FakeLlamaServer::WaitHeld(std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return held_; });
}

bool FakeLlamaServer::WaitCancelled(std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return cancelled_ > 0; });
}

std::vector<FakeLlamaServer::Call> FakeLlamaServer::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

std::vector<std::string> FakeLlamaServer::violations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}

int FakeLlamaServer::health_checks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return health_checks_;
}

std::string FakeLlamaServer::last_authorization() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_authorization_;
}

std::string FakeLlamaServer::last_header(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = last_headers_.find(name);  // httplib compares names case-insensitively
  return it == last_headers_.end() ? "(absent)" : it->second;
}

std::string FakeLlamaServer::last_body() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_body_;
}

void FakeLlamaServer::SlotAction(const httplib::Request& req, httplib::Response& res) {
  const int slot = std::stoi(req.matches[1]);
  const std::string action = req.get_param_value("action");
  const json body = json::parse(req.body.empty() ? "{}" : req.body);
  const std::filesystem::path file = save_dir_ / body.value("filename", "");
  std::unique_lock<std::mutex> lock(mu_);
  if (action == "save") changed_.wait(lock, [&] { return !hang_saves_; });
  std::string& kv = kv_.at(static_cast<size_t>(slot));
  calls_.push_back({action, slot, AgentTag(kv), ""});
  auto fail = [&](const std::string& why) {
    res.status = 400;
    res.set_content(json{{"error", {{"code", 400}, {"message", why}}}}.dump(), "application/json");
  };
  if (action == "save") {
    if (fail_saves_ > 0 && fail_saves_--) return fail("Unable to save slot");
    std::ofstream(file) << kv;
    res.set_content(json{{"n_saved", kv.size()}, {"n_written", kv.size()}}.dump(),
                    "application/json");
  } else if (action == "restore") {
    std::ifstream in(file);
    if ((fail_restores_ > 0 && fail_restores_--) || !in) {
      kv.clear();  // as llama-server does on a failed restore
      return fail("Unable to restore slot");
    }
    kv.assign(std::istreambuf_iterator<char>(in), {});
    const size_t n = kv.size();
    if (hollow_restores_ > 0 && hollow_restores_--) kv.clear();
    res.set_content(json{{"n_restored", n}, {"n_read", n}}.dump(), "application/json");
  } else if (action == "erase") {
    if (fail_erases_) return fail("erase failed");
    kv.clear();
    res.set_content(json{{"n_erased", 0}}.dump(), "application/json");
  } else {
    fail("bad action");
  }
}

void FakeLlamaServer::Completion(const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, false);
  // As llama-server, it checks parameters before it touches a slot.
  const bool bad_n_predict =
      body.is_object() && body.contains("n_predict") && !body["n_predict"].is_number_integer();
  if (!body.is_object() || body.value("bad_param", false) || bad_n_predict) {
    res.status = 400;
    res.set_content(R"({"error":{"code":400,"message":"fake: bad params"}})", "application/json");
    return;
  }
  const int slot = body.value("id_slot", -1);
  const std::string prompt = PromptOf(body);
  json timings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_body_ = req.body;
    last_authorization_ = req.get_header_value("Authorization");
    last_headers_ = req.headers;
    calls_.push_back({"completion", slot, AgentTag(prompt), req.body});
    if (slot < 0 || slot >= static_cast<int>(kv_.size())) {
      violations_.push_back("unpinned request for " + AgentTag(prompt));
    } else {
      std::string& kv = kv_[static_cast<size_t>(slot)];
      if (!kv.empty() && AgentTag(kv) != AgentTag(prompt)) {
        violations_.push_back(AgentTag(prompt) + " ran on " + AgentTag(kv) + "'s KV");
      }
      const size_t cached = CommonPrefix(kv, prompt);
      timings = {{"cache_n", cached}, {"prompt_n", prompt.size() - cached}};
      kv = prompt + "ok";
    }
  }
  const std::string id = "fake-" + AgentTag(prompt);
  json finish;  // null: not given
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finish_reason_.empty()) finish = finish_reason_;
  }
  if (!body.value("stream", false)) {
    json choice = {{"message", {{"role", "assistant"}, {"content", "ok"}}}};
    if (!finish.is_null()) choice["finish_reason"] = finish;
    res.set_content(json{{"id", id}, {"choices", {choice}}, {"timings", timings}}.dump(),
                    "application/json");
    return;
  }
  res.set_chunked_content_provider(
      "text/event-stream", [this, id, timings, finish](size_t, httplib::DataSink& sink) {
        int chunks;
        {
          std::lock_guard<std::mutex> lock(mu_);
          chunks = stream_chunks_;
        }
        // Event i: the role, then `chunks` tokens, the timings, [DONE].
        auto event = [&](int i) -> std::string {
          if (i == 0)
            return Event({{"id", id}, {"choices", {{{"delta", {{"role", "assistant"}}}}}}});
          if (i <= chunks) {
            return Event({{"id", id},
                          {"choices", {{{"delta", {{"content", "t" + std::to_string(i - 1)}}}}}}});
          }
          if (i == chunks + 1) {
            json choices = json::array();
            if (!finish.is_null())
              choices.push_back({{"finish_reason", finish}, {"delta", json::object()}});
            return Event({{"id", id}, {"choices", choices}, {"timings", timings}});
          }
          return "data: [DONE]\n\n";
        };
        for (int i = 0; i <= chunks + 2; ++i) {
          {
            std::unique_lock<std::mutex> lock(mu_);
            if (hold_at_ == i) {
              held_ = true;
              changed_.notify_all();
              changed_.wait(lock, [&] { return hold_at_ != i; });
            }
          }
          const std::string e = event(i);
          if (!sink.write(e.data(), e.size())) {
            Set([&] { cancelled_++; });
            return false;
          }
        }
        sink.done();
        return true;
      });
}

}  // namespace agentkv::testing
