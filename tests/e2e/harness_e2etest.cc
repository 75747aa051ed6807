// The harness's sanitizer check, against real sanitizer output: in the debug (ASan + UBSan) and
// tsan builds a child process with a real heap overflow, signed overflow or data race must end
// with the failing exit code that ctest's ASAN_OPTIONS/UBSAN_OPTIONS/TSAN_OPTIONS ask for, and
// SanitizerReport must find the report in its output (what the harness scans server logs with).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "harness.h"

namespace redpacket::e2e {
namespace {

// Runs `body` in a forked child with stdout and stderr into a pipe, then exit(0).
[[maybe_unused]] CommandResult RunInChild(const std::function<void()>& body) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    body();
    std::exit(0);  // through exit(): TSan reports its exit code from an atexit hook
  }
  close(fds[1]);
  CommandResult result;
  char chunk[4096];
  for (ssize_t n; (n = read(fds[0], chunk, sizeof chunk)) > 0;) {
    result.output.append(chunk, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

TEST(HarnessE2E, SanitizerReportFindsEachSanitizersFirstLine) {
  EXPECT_EQ(SanitizerReport("[info] listening on http://127.0.0.1:1\n[info] stopped\n"), "");
  EXPECT_EQ(SanitizerReport("a\n==7==ERROR: AddressSanitizer: heap-buffer-overflow\n#0 x\n"),
            "==7==ERROR: AddressSanitizer: heap-buffer-overflow\n#0 x\n");
  EXPECT_NE(SanitizerReport("src/x.cc:3:5: runtime error: signed integer overflow\n"), "");
  EXPECT_NE(SanitizerReport("==1==ERROR: LeakSanitizer: detected memory leaks\n"), "");
  EXPECT_NE(SanitizerReport("WARNING: ThreadSanitizer: data race (pid=5)\n"), "");
}

TEST(HarnessE2E, ARealSanitizerReportEndsTheProcessAndIsFound) {
#if defined(__SANITIZE_ADDRESS__)
  const CommandResult overflow = RunInChild([] {
    volatile int index = 8;
    // Through a volatile pointer: UBSan's object-size check cannot see the size (ASan reports
    // it), and the store to volatile memory is not optimized away.
    volatile char* volatile bytes = new char[8];
    bytes[index] = 1;
    delete[] const_cast<char*>(bytes);
  });
  EXPECT_EQ(overflow.exit_code, 128 + SIGABRT) << overflow.output;  // abort_on_error=1
  EXPECT_NE(SanitizerReport(overflow.output).find("heap-buffer-overflow"), std::string::npos)
      << overflow.output;

  const CommandResult undefined = RunInChild([] {
    volatile int big = INT_MAX;
    volatile int sum = big + 1;
    (void)sum;
  });
  EXPECT_EQ(undefined.exit_code, 128 + SIGABRT) << undefined.output;
  EXPECT_NE(SanitizerReport(undefined.output).find("signed integer overflow"), std::string::npos)
      << undefined.output;
#elif defined(__SANITIZE_THREAD__)
  const CommandResult race = RunInChild([] {
    int counter = 0;  // written by two threads without a lock: a data race
    auto add = [&counter] {
      for (int i = 0; i < 100000; ++i) ++*static_cast<volatile int*>(&counter);
    };
    std::thread first(add);
    std::thread second(add);
    first.join();
    second.join();
  });
  EXPECT_EQ(race.exit_code, 66) << race.output;  // TSAN_OPTIONS=exitcode=66
  EXPECT_NE(SanitizerReport(race.output).find("data race"), std::string::npos) << race.output;
#else
  GTEST_SKIP() << "not a sanitizer build";
#endif
}

}  // namespace
}  // namespace redpacket::e2e
