#pragma once
// The names of the memory directory's files (store.h has the layout), by
// name alone: H.meta, H.<generation>.kv, H.<generation>.<node>.kv, each
// maybe + .tmp, and H.meta.<node>.tmp, where H is the SHA-256 of the agent
// id in hex and <node> a node of a shared directory. No file I/O.

#include <string>

namespace agentkv {

// What an entry of the memory directory is, and which node wrote it (""
// in a directory of one daemon, or for the metadata).
struct FileNameParts {
  enum class Kind { kForeign, kMeta, kState, kTemp };
  Kind kind = Kind::kForeign;
  std::string node;
};
FileNameParts ParseFileName(const std::string& name);

// True if `state_file` is a state file of the agent `hash` at `generation`,
// written by any node.
bool NamesStateOf(const std::string& state_file, const std::string& hash, long long generation);
// True if `name` is "[a-z0-9-]{1,32}": a node name fit for file names.
bool IsNodeName(const std::string& name);

std::string MetaFileName(const std::string& hash);
// `node` "": a directory of one daemon.
std::string StateFileName(const std::string& hash, long long generation, const std::string& node);
std::string MetaTempFileName(const std::string& hash, const std::string& node);
// The temporary a save of `name` writes first.
std::string TempFileName(const std::string& name);

}  // namespace agentkv
