#pragma once
// A mutex and its scoped lock that clang's -Wthread-safety understands, so
// that lock rules are checked at compile time instead of written in prose:
//
//   Mutex mu_;
//   int count_ GUARDED_BY(mu_);
//   void BumpLocked() REQUIRES(mu_);
//
// Waiting uses std::condition_variable_any on the MutexLock itself. A
// predicate lambda is checked on its own, so it says that it runs under the
// lock (clang cannot check that the wait calls it so):
//
//   MutexLock lock(mu_);
//   changed_.wait(lock, [&]() REQUIRES(mu_) { return ready_; });
//
// With other compilers the annotations compile to nothing.

#include <mutex>

#if defined(__clang__)
#define AGENTKV_TSA(x) __attribute__((x))
#else
#define AGENTKV_TSA(x)
#endif

#define CAPABILITY(x) AGENTKV_TSA(capability(x))
#define SCOPED_CAPABILITY AGENTKV_TSA(scoped_lockable)
#define GUARDED_BY(x) AGENTKV_TSA(guarded_by(x))
#define REQUIRES(...) AGENTKV_TSA(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) AGENTKV_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) AGENTKV_TSA(release_capability(__VA_ARGS__))

namespace agentkv {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for its scope. lock()/unlock() let std::condition_variable_any
// release and retake it while waiting; the lock is held again when wait returns.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }
  void unlock() RELEASE() {
    held_ = false;
    mu_.unlock();
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

}  // namespace agentkv
