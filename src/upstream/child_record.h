#pragma once
// A record, in the memory directory, of the llama-server an agentkv started
// on it, so that the next agentkv on that directory can end one that
// outlived an earlier instance. llama-server gets SIGKILL when agentkv dies
// (PR_SET_PDEATHSIG), but that signal is not sent when the thread that
// started it ends in an unusual way, nor by an init that restarts agentkv
// alone, and a llama-server left running holds its RAM and its slots.
//
// The record holds llama-server's pid and start time (clock ticks since
// boot, from /proc/PID/stat), the boot id and the pid of the agentkv that
// started it: a pid that was reused, or a record from before a reboot or
// from another host sharing the directory, never names the process to end,
// and the llama-server of an agentkv that still runs (still its parent: a
// second agentkv started on the same directory by mistake) is left alone.
// Thread-safe: plain functions on files.

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "agentkv/status.h"

namespace agentkv {

// Where the record of a llama-server started on `memory_dir` by node `node`
// ("" outside a shared directory) lives: a name the store leaves alone.
std::filesystem::path ChildRecordPath(const std::filesystem::path& memory_dir,
                                      const std::string& node);

// Records the running process `pid`, started by this process, at `record`
// (written under a temporary name, then renamed). Returns kIo if /proc or
// the file cannot be written.
Status WriteChildRecord(const std::filesystem::path& record, pid_t pid);

// Removes the record; a missing one is fine.
void RemoveChildRecord(const std::filesystem::path& record);

// What EndRecordedChild found.
struct RecordedChild {
  pid_t ended = -1;         // the llama-server it ended, or -1
  pid_t live_parent = -1;   // an agentkv still running that started it, or -1
  pid_t left_running = -1;  // that agentkv's llama-server, left alone
};

// If `record` names a process that still runs (same boot, same start time),
// whose command line holds `--slot-save-path` naming `memory_dir`, and
// whose parent is no longer the agentkv that started it, sends it SIGKILL and waits (at most 10 s)
// until it is gone, then removes the record. Returns OK with nothing done
// when there is no record or it names no such process; kIo if the process
// does not go away; what it found in *found. Blocks.
Status EndRecordedChild(const std::filesystem::path& record,
                        const std::filesystem::path& memory_dir, RecordedChild* found);

}  // namespace agentkv
