// Prints the CPU cost of one full collection (all checks, no subprocess) on a root tree, and the
// process's peak RSS. Usage: collect_bench [ROOT] [ITERATIONS]. A program, not a timed test.
#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"
#include "collectors/policy.h"

static double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int main(int argc, char** argv) {
  std::string root = argc > 1 ? argv[1] : "/";
  int iterations = argc > 2 ? std::atoi(argv[2]) : 200;
  auto view = vigil::collectors::NewRootedSystemView(root);
  auto policy = vigil::collectors::DefaultPolicy();
  size_t bytes = 0;
  double start = CpuSeconds();
  for (int i = 0; i < iterations; ++i) {
    vigil::v1::Attestation att;
    *att.mutable_platform() = vigil::collectors::CollectPlatform(*view);
    for (auto& c : vigil::collectors::CollectAll(*view)) *att.add_checks() = std::move(c);
    vigil::collectors::EvaluateAll(policy, att.mutable_checks());
    bytes = att.ByteSizeLong();
  }
  double per_ms = (CpuSeconds() - start) * 1000.0 / iterations;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "root %s: %.3f ms CPU per full collection (%d runs; target < 15 ms: %.1f%% of budget)\n",
      root.c_str(), per_ms, iterations, per_ms / 15.0 * 100.0);
  std::printf("attestation size %zu bytes; peak RSS %ld KB (target < 16384 KB for the agent)\n",
              bytes, ru.ru_maxrss);
  return 0;
}
