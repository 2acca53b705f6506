#include "upstream/listen_owner.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace agentkv {

namespace {

namespace fs = std::filesystem;

constexpr char kListenState[] = "0A";  // TCP_LISTEN in /proc/net/tcp

// The inodes of the sockets listening on `port` in /proc/net/tcp{,6}.
Result<std::set<std::string>> ListeningInodes(int port) {
  std::set<std::string> inodes;
  bool readable = false;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    if (!in) continue;
    readable = true;
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      const std::size_t colon = local.rfind(':');
      if (state != kListenState || colon == std::string::npos) continue;
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
    }
  }
  if (!readable) return Status::Error(ErrorCode::kUnsupported, "no /proc/net/tcp");
  return inodes;
}

}  // namespace

Result<bool> ListensOn(pid_t pid, int port) {
  Result<std::set<std::string>> inodes = ListeningInodes(port);
  if (!inodes.ok()) return inodes.status();
  if (inodes->empty()) return false;
  // A process of another user, or one gone, shows no fds: not ours.
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string t = fs::read_symlink(fd.path(), ec).string();  // "socket:[12345]"
    if (!ec && t.size() > 9 && t.compare(0, 8, "socket:[") == 0 &&
        inodes->count(t.substr(8, t.size() - 9)) > 0) {
      return true;
    }
  }
  return false;
}

}  // namespace agentkv
