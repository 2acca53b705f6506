#pragma once
// The memory directory: the only code that touches it. llama-server writes
// slot files into it (it is llama-server's --slot-save-path); the store names
// them and makes each save atomic.
// Thread-safe as long as two calls never name the same agent at once, which
// residency guarantees (an agent is saved or restored by one request at a time).

#include <filesystem>
#include <string>

#include "agentkv/agent_id.h"
#include "agentkv/status.h"

namespace agentkv {

class Store {
 public:
  explicit Store(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }

  // Creates the directory if needed and removes temporaries left by a crash.
  // Returns kIo if the directory cannot be created or listed.
  Status Open();

  // The file name an agent's KV lives under, derived from a hash of the id:
  // never the id itself, never a slash.
  static std::string FileName(const AgentId& agent);
  // Where llama-server writes a save before CommitSave makes it the memory.
  static std::string TempFileName(const AgentId& agent);

  // Makes the temporary the agent's memory: fsync, rename over the old file,
  // fsync the directory. A crash at any instant leaves the old file or the
  // new one. Returns kIo (and removes the temporary) on failure.
  Status CommitSave(const AgentId& agent);

  // Removes the agent's file and temporary, if present.
  void Remove(const AgentId& agent);

 private:
  std::filesystem::path dir_;
};

}  // namespace agentkv
