// The physical limit of a durable acknowledgement: how long the disk under a directory takes to
// make an appended page durable (write + fdatasync, what SQLite's WAL commit does once per group
// commit), as percentiles. A report is acknowledged after its group's commit, and a report that
// arrives during one commit waits for it and then for its own, so p99 report latency cannot be
// below this p99 (and approaches twice it under load). Prints figures; not a test.
// Usage: fsync_bench [DIR (default .)] [N (default 2000)] [KIB per commit (default 4; a group
// commit of k attestations writes about 17 KiB each to the WAL, docs/scaling.md)]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
  int n = argc > 2 ? std::atoi(argv[2]) : 2000;
  if (n < 10) n = 10;
  int kib = argc > 3 ? std::atoi(argv[3]) : 4;
  if (kib < 1) kib = 1;
  std::string path = dir + "/vigil-fsync-bench.tmp";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  std::vector<char> page(static_cast<size_t>(kib) * 1024, 'v');
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (::write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size()) ||
        ::fdatasync(fd) != 0) {
      std::perror("write/fdatasync");
      return 1;
    }
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[static_cast<size_t>(p * (us.size() - 1))] / 1000.0; };
  std::printf("durable %d KiB append (write + fdatasync) in %s, %d times:\n", kib, dir.c_str(), n);
  std::printf("  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", pct(0.5), pct(0.9),
              pct(0.99), pct(1.0));
  std::printf(
      "  => at most %.0f durable commits/s one after another; a report's p99 latency is at\n"
      "     least %.2f ms (one commit) and up to %.2f ms (waiting out the one in flight)\n",
      1000.0 / pct(0.5), pct(0.99), 2 * pct(0.99));
  return 0;
}
