// The component tests' fake llama-server as a program of its own, for the
// benchmark's scale scenario (bench/harness/scale.py), where agentkv's own
// costs are measured without a model's:
//
//   agentkv-fake-llama --slots N --dir MEMORY_DIR [--port P]
//
// It prints "fake llama-server listening on 127.0.0.1:PORT" and serves until
// SIGTERM or SIGINT. Its slot files go to MEMORY_DIR (agentkv's --memory-dir).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "component/fake_llama_server.h"

int main(int argc, char** argv) {
  int slots = 2, port = 0;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--slots") {
      slots = std::atoi(argv[i + 1]);
    } else if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "agentkv-fake-llama: unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  if (dir.empty() || slots < 1) {
    std::fprintf(stderr, "usage: agentkv-fake-llama --slots N --dir MEMORY_DIR [--port P]\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the server's threads start
  agentkv::testing::FakeLlamaServer fake(slots, dir, port);
  if (fake.port() <= 0) {
    std::fprintf(stderr, "agentkv-fake-llama: cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("fake llama-server listening on 127.0.0.1:%d\n", fake.port());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}
