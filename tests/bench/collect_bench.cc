// Prints the CPU and wall time of one full collection (every check, evaluation included, no
// subprocess) on a root tree, per check and in total, with the ratio to the agent's budget, and
// the process's peak RSS. A program, not a timed test.
//
// Usage: collect_bench [ROOT] [ITERATIONS] [--compile-dconf]
//   --compile-dconf  copy ROOT to a temporary directory first and compile its dconf keyfile
//                    directories (etc/dconf/db/*.d, home/*/.config/dconf/*.d) with `dconf compile`,
//                    as fixture trees keep only keyfiles (e.g. tests/fixtures/realistic).
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"
#include "collectors/policy.h"

namespace fs = std::filesystem;

namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool CompileKeyfileDirs(const fs::path& dir) {
  if (!fs::is_directory(dir)) return true;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (!entry.is_directory() || p.extension() != ".d" || fs::exists(p / ".no-compile")) continue;
    std::string cmd =
        "dconf compile '" + (p.parent_path() / p.stem()).string() + "' '" + p.string() + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "failed: %s\n", cmd.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root = "/";
  int iterations = 200;
  bool compile = false;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--compile-dconf") {
      compile = true;
    } else if (positional++ == 0) {
      root = a;
    } else {
      iterations = std::atoi(a.c_str());
    }
  }
  if (iterations <= 0) iterations = 1;
  fs::path tmp;
  if (compile) {
    std::string tmpl = (fs::temp_directory_path() / "vigil-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return 1;
    tmp = tmpl;
    fs::copy(root, tmp, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    bool ok = CompileKeyfileDirs(tmp / "etc/dconf/db");
    if (fs::is_directory(tmp / "home")) {
      for (const auto& home : fs::directory_iterator(tmp / "home")) {
        ok = ok && CompileKeyfileDirs(home.path() / ".config/dconf");
      }
    }
    if (!ok) return 1;
  }
  auto view = vigil::collectors::NewRootedSystemView(compile ? tmp.string() : root);
  auto policy = vigil::collectors::DefaultPolicy();

  using Fn = vigil::v1::Evidence (*)(const vigil::collectors::SystemView&);
  const std::pair<const char*, Fn> checks[] = {
      {"screen_lock", &vigil::collectors::CollectScreenLock},
      {"password_policy", &vigil::collectors::CollectPasswordPolicy},
      {"usb_storage", &vigil::collectors::CollectUsbStorage},
  };
  for (const auto& [name, fn] : checks) {
    double c0 = CpuSeconds();
    for (int i = 0; i < iterations; ++i) {
      auto e = fn(*view);
      (void)vigil::collectors::Evaluate(name, e, policy);
    }
    std::printf("  %-16s %.3f ms CPU\n", name, (CpuSeconds() - c0) * 1000.0 / iterations);
  }
  size_t bytes = 0;
  std::string statuses;
  double c0 = CpuSeconds(), w0 = WallSeconds();
  for (int i = 0; i < iterations; ++i) {
    vigil::v1::Attestation att;
    *att.mutable_platform() = vigil::collectors::CollectPlatform(*view);
    for (auto& c : vigil::collectors::CollectAll(*view)) *att.add_checks() = std::move(c);
    vigil::collectors::EvaluateAll(policy, att.mutable_checks());
    bytes = att.ByteSizeLong();
    if (i == 0) {
      for (const auto& c : att.checks()) {
        statuses += " " + c.check() + "=" + vigil::v1::CheckStatus_Name(c.status());
      }
    }
  }
  double cpu_ms = (CpuSeconds() - c0) * 1000.0 / iterations;
  double wall_ms = (WallSeconds() - w0) * 1000.0 / iterations;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("root %s (%d runs):%s\n", root.c_str(), iterations, statuses.c_str());
  std::printf(
      "full collection: %.3f ms CPU, %.3f ms wall; budget 15 ms CPU (agent) / 20 ms "
      "(realistic tree): %.1f%% / %.1f%%\n",
      cpu_ms, wall_ms, cpu_ms / 15.0 * 100.0, cpu_ms / 20.0 * 100.0);
  std::printf("attestation %zu bytes; peak RSS %ld KB (agent budget 16384 KB)\n", bytes,
              ru.ru_maxrss);
  if (compile) fs::remove_all(tmp);
  return 0;
}
