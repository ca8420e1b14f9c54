// Runs the real vigil-agent daemon against a real vigil-server on 127.0.0.1 and prints the
// agent's footprint: start to first acknowledged attestation, steady RSS/PSS, CPU per
// collection (and that no subprocess ran), wake-ups per second when idle (per thread, so the
// culprit is visible), threads and binary sizes, each with its target and the ratio to it, next
// to the osquery and Wazuh figures the targets were set against. A program, not a timed test.
//
// Set-up as deployed: `vigil-server init` (private CA, TLS 1.3), the agent enrolled from the
// bundle (so it reports over mutual TLS). Daemon runs on one state directory:
//   active: --interval INTERVAL --jitter 0 for ACTIVE seconds; CPU and memory per cycle;
//   idle:   --interval 3600 after its first report; context switches over IDLE seconds, memory
//           by mapping, PSS again with the server stopped (it shares the gRPC libraries);
//   starts: STARTS more starts, each stopped after its first acknowledged report.
// Everything is read from /proc and from the agent's state directory (status.json, sequence);
// the agent is not changed or instrumented.
//
// Usage: footprint_bench [--server-bin PATH] [--agent-bin PATH] [--root DIR] [--active SECONDS]
//                        [--interval SECONDS] [--idle SECONDS] [--starts N] [--keep]
//   The binaries default to vigil-server and vigil-agent next to this program or in ../server and
//   ../agent (the build tree). --root is the tree the agent collects from (default /). Defaults:
//   --active 120 --interval 10 (the shortest interval the agent accepts) --idle 60 --starts 5.
#include <elf.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

// The targets (docs/scaling.md, "Agent footprint") and the references they were set against.
constexpr double kRssTargetMb = 16;
constexpr double kPssTargetMb = 8;
constexpr double kCpuPerCollectionTargetMs = 15;
constexpr double kIdleWakeupsTargetPerSec = 0.3;
constexpr double kFirstAckTargetMs = 250;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int64_t NowRealMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Mb(int64_t kb) { return static_cast<double>(kb) / 1024.0; }

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown so the bench's destructor still stops the server and the agent.
[[noreturn]] void Die(const std::string& msg) { throw BenchError(msg); }

// ---------- child processes ----------

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    auto redirect = [](const std::string& path, int fd) {
      if (path.empty()) return;
      FILE* f = std::fopen(path.c_str(), "a");
      if (f != nullptr) dup2(fileno(f), fd);
    };
    redirect(out_path, 1);
    redirect(err_path, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Runs a command to completion; its stdout is returned, its stderr appended to `log`.
std::string RunOrDie(const std::vector<std::string>& argv, const std::string& dir,
                     const std::string& log) {
  std::string out = dir + "/cmd.out";
  fs::remove(out);
  pid_t pid = Spawn(argv, out, log);
  int rc = WaitExit(pid, std::chrono::seconds(60));
  if (rc != 0) {
    Die(argv[0] + " " + argv[1] + " failed (exit " + std::to_string(rc) + "); see " + log);
  }
  return ReadText(out);
}

// ---------- /proc ----------

struct ProcStat {
  int64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // clock ticks
  int64_t threads = 0;
};

ProcStat ReadProcStat(pid_t pid) {
  std::string s = ReadText("/proc/" + std::to_string(pid) + "/stat");
  ProcStat st;
  size_t close = s.rfind(')');
  if (close == std::string::npos) return st;
  std::istringstream in(s.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state) in proc(5)
  for (std::string t; in >> t;) f.push_back(t);
  if (f.size() < 18) return st;
  st.utime = std::stoll(f[11]);
  st.stime = std::stoll(f[12]);
  st.cutime = std::stoll(f[13]);
  st.cstime = std::stoll(f[14]);
  st.threads = std::stoll(f[17]);
  return st;
}

// The process's CPU time in ns (all threads, those that exited included), from the kernel's
// per-process CPU clock: nanosecond resolution where /proc/PID/stat has 10 ms ticks.
int64_t ProcessCpuNs(pid_t pid) {
  clockid_t clock;
  if (clock_getcpuclockid(pid, &clock) != 0) return -1;
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return -1;
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Memory {
  int64_t rss_kb = 0, pss_kb = 0, private_kb = 0, anon_kb = 0;
};

int64_t FieldKb(const std::string& text, const std::string& key) {
  size_t at = text.find("\n" + key + ":");
  if (at == std::string::npos) {
    if (text.rfind(key + ":", 0) != 0) return 0;
    at = 0;
  } else {
    at += 1;
  }
  return std::atoll(text.c_str() + at + key.size() + 1);
}

Memory ReadMemory(pid_t pid) {
  std::string s = ReadText("/proc/" + std::to_string(pid) + "/smaps_rollup");
  Memory m;
  m.rss_kb = FieldKb(s, "Rss");
  m.pss_kb = FieldKb(s, "Pss");
  m.private_kb = FieldKb(s, "Private_Clean") + FieldKb(s, "Private_Dirty");
  m.anon_kb = FieldKb(s, "Anonymous");
  return m;
}

// Memory per mapped file (anonymous mappings, heap and stacks together), largest RSS first.
std::vector<std::pair<std::string, Memory>> MemoryByMapping(pid_t pid) {
  std::istringstream in(ReadText("/proc/" + std::to_string(pid) + "/smaps"));
  std::map<std::string, Memory> by;
  Memory* cur = nullptr;
  for (std::string line; std::getline(in, line);) {
    size_t space = line.find(' ');
    if (space != std::string::npos && space > 0 && line[space - 1] != ':') {  // a mapping's header
      size_t slash = line.find('/');
      cur = &by[slash == std::string::npos ? "[anonymous, heap, stacks]" : line.substr(slash)];
      continue;
    }
    if (cur == nullptr) continue;
    std::string key = line.substr(0, line.find(':'));
    int64_t kb = std::atoll(line.c_str() + key.size() + 1);
    if (key == "Rss") cur->rss_kb += kb;
    if (key == "Pss") cur->pss_kb += kb;
    if (key == "Private_Clean" || key == "Private_Dirty") cur->private_kb += kb;
    if (key == "Anonymous") cur->anon_kb += kb;
  }
  std::vector<std::pair<std::string, Memory>> v(by.begin(), by.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.rss_kb > b.second.rss_kb; });
  return v;
}

// Other processes that map `path` (they share its pages, which lowers the agent's PSS).
int ProcessesMapping(const std::string& path, pid_t except) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::atoi(name.c_str()) == except) continue;
    if (ReadText(e.path() / "maps").find(path) != std::string::npos) ++n;
  }
  return n;
}

struct ThreadInfo {
  std::string name;
  int64_t voluntary = 0, involuntary = 0;
};

std::map<int, ThreadInfo> ReadThreads(pid_t pid) {
  std::map<int, ThreadInfo> threads;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    int tid = std::atoi(e.path().filename().c_str());
    ThreadInfo t;
    t.name = ReadText(e.path() / "comm");
    while (!t.name.empty() && t.name.back() == '\n') t.name.pop_back();
    std::string status = ReadText(e.path() / "status");
    t.voluntary = FieldKb(status, "voluntary_ctxt_switches");
    t.involuntary = FieldKb(status, "nonvoluntary_ctxt_switches");
    threads[tid] = t;
  }
  return threads;
}

// Live children of any of the process's threads (a collector that shells out shows up here).
int CountChildren(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::istringstream in(ReadText(e.path() / "children"));
    for (std::string c; in >> c;) ++n;
  }
  return n;
}

// ---------- the agent's state directory ----------

int64_t JsonInt(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return 0;
  at = json.find(':', at);
  if (at == std::string::npos) return 0;
  while (at < json.size() && (json[at] == ':' || json[at] == ' ' || json[at] == '"')) ++at;
  return std::atoll(json.c_str() + at);
}

struct AgentState {
  int64_t sequence = 0;
  int64_t last_collection_ms = 0;
  int64_t last_report_ms = 0;
  size_t queued = 0;
};

AgentState ReadState(const std::string& dir) {
  AgentState s;
  s.sequence = std::atoll(ReadText(dir + "/sequence").c_str());
  std::string st = ReadText(dir + "/status.json");
  s.last_collection_ms = JsonInt(st, "lastCollectionMs");
  s.last_report_ms = JsonInt(st, "lastReportMs");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/outbox", ec)) {
    if (e.path().extension() == ".att") ++s.queued;
  }
  return s;
}

// ---------- binaries ----------

struct ElfSizes {
  uint64_t text = 0, data = 0, bss = 0, debug = 0;
};

std::optional<ElfSizes> ReadElfSizes(const std::string& path) {
  std::string bytes = ReadText(path);
  if (bytes.size() < sizeof(Elf64_Ehdr) || bytes.compare(0, 4, ELFMAG) != 0) return std::nullopt;
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return std::nullopt;
  if (eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) > bytes.size()) return std::nullopt;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), bytes.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
  if (eh.e_shstrndx >= sh.size()) return std::nullopt;
  const char* names = bytes.data() + sh[eh.e_shstrndx].sh_offset;
  ElfSizes z;
  for (const auto& s : sh) {
    std::string name = names + s.sh_name;
    if (name.rfind(".debug", 0) == 0) z.debug += s.sh_size;
    if ((s.sh_flags & SHF_ALLOC) == 0) continue;
    if (s.sh_type == SHT_NOBITS) {
      z.bss += s.sh_size;
    } else if ((s.sh_flags & SHF_EXECINSTR) != 0 || (s.sh_flags & SHF_WRITE) == 0) {
      z.text += s.sh_size;  // as size(1): code and read-only data
    } else {
      z.data += s.sh_size;
    }
  }
  return z;
}

// The shared objects a running process maps, with their file sizes, largest first.
std::vector<std::pair<std::string, uintmax_t>> MappedLibraries(pid_t pid) {
  std::istringstream in(ReadText("/proc/" + std::to_string(pid) + "/maps"));
  std::set<std::string> paths;
  for (std::string line; std::getline(in, line);) {
    size_t slash = line.find('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) {
      paths.insert(line.substr(slash));
    }
  }
  std::vector<std::pair<std::string, uintmax_t>> libs;
  for (const auto& p : paths) {
    std::error_code ec;
    uintmax_t size = fs::file_size(p, ec);
    libs.emplace_back(p, ec ? 0 : size);
  }
  std::sort(libs.begin(), libs.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return libs;
}

// ---------- the bench ----------

struct Options {
  std::string server_bin, agent_bin, root = "/";
  int active_seconds = 120, interval_seconds = 10, idle_seconds = 60, starts = 5;
  bool keep = false;
};

std::string FindNextToSelf(const std::string& name, const std::string& sibling_dir) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (const fs::path& p : {self / name, self / ".." / sibling_dir / name}) {
    if (fs::exists(p, ec)) return fs::weakly_canonical(p, ec).string();
  }
  return "";
}

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}
  ~Bench() { Cleanup(); }

  void Run() {
    SetUp();
    ActivePhase();
    IdlePhase();
    StartsPhase();
    Binaries();
    Summary();
  }

 private:
  void SetUp() {
    std::string tmpl = (fs::temp_directory_path() / "vigil-footprint-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
    dir_ = tmpl;
    state_ = dir_ + "/state";
    std::string log = dir_ + "/setup.log";
    RunOrDie(
        {o_.server_bin, "init", "--data-dir", dir_ + "/data", "--server-address", "127.0.0.1:7400"},
        dir_, log);
    server_ = Spawn({o_.server_bin, "--listen", "127.0.0.1:0", "--data-dir", dir_ + "/data",
                     "--ready-file", dir_ + "/ready"},
                    dir_ + "/server.log", dir_ + "/server.log");
    for (int i = 0; i < 400 && ReadText(dir_ + "/ready").empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    address_ = ReadText(dir_ + "/ready");
    while (!address_.empty() && address_.back() == '\n') address_.pop_back();
    if (address_.empty()) Die("the server did not start; see " + dir_ + "/server.log");
    std::string device =
        RunOrDie({o_.agent_bin, "enroll", "--bundle", dir_ + "/data/enroll-bundle.json", "--server",
                  address_, "--state-dir", state_},
                 dir_, log);
    while (!device.empty() && device.back() == '\n') device.pop_back();
    if (!fs::exists(state_ + "/device.crt")) Die("enrolled without a client certificate");
    std::printf("vigil-agent footprint: server %s (TLS 1.3, private CA from init), device %s\n",
                address_.c_str(), device.c_str());
    std::printf("  agent  %s\n  server %s\n  root   %s\n  work   %s\n\n", o_.agent_bin.c_str(),
                o_.server_bin.c_str(), o_.root.c_str(), dir_.c_str());
  }

  // Starts `vigil-agent run` and waits for its first acknowledged attestation. The agent writes
  // lastReportMs (its wall clock) into status.json right after a flush the server answered and
  // deletes each attestation from the outbox only once the server acknowledged it: a report at
  // or after the fork, with a new sequence and an empty outbox, is this process's first
  // acknowledged attestation. Returns the agent's pid; the latency goes to first_ack_ms_.
  pid_t StartAgent(int interval, const std::string& log, const char* phase) {
    std::string config = dir_ + "/agent.json";
    std::ofstream(config) << "{\"server\": \"" << address_ << "\", \"stateDir\": \"" << state_
                          << "\", \"root\": \"" << o_.root
                          << "\", \"intervalSeconds\": " << interval << ", \"jitterSeconds\": 0}\n";
    AgentState before = ReadState(state_);
    int64_t spawn_ms = NowRealMs();
    agent_ = Spawn({o_.agent_bin, "run", "--config", config}, log, log);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (true) {
      AgentState s = ReadState(state_);
      if (s.last_report_ms >= spawn_ms && s.sequence > before.sequence && s.queued == 0) {
        int64_t seen = NowRealMs();
        double ms = static_cast<double>(s.last_report_ms - spawn_ms);
        first_ack_ms_.push_back(ms);
        std::printf(
            "%s: start to first acknowledged attestation %.0f ms (status.json lastReportMs - "
            "fork time; the bench, polling every ms, saw it at %lld ms)\n",
            phase, ms, static_cast<long long>(seen - spawn_ms));
        return agent_;
      }
      int rc = 0;
      if (waitpid(agent_, &rc, WNOHANG) == agent_) {
        agent_ = 0;
        Die(std::string(phase) + ": the agent exited: " + ReadText(log));
      }
      if (std::chrono::steady_clock::now() > deadline) Die("no acknowledged attestation in 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void StopAgent(const char* phase) {
    kill(agent_, SIGTERM);
    int rc = WaitExit(agent_, std::chrono::seconds(10));
    agent_ = 0;
    if (rc != 0) std::printf("  (%s: the agent exited with %d on SIGTERM)\n", phase, rc);
  }

  // Waits for the next full cycle: a new sequence (collection) and a report after it, outbox
  // empty. Samples the agent's children meanwhile.
  AgentState NextCycle(pid_t pid, const AgentState& prev) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o_.interval_seconds) +
                    std::chrono::seconds(30);
    while (true) {
      max_children_ = std::max(max_children_, CountChildren(pid));
      AgentState s = ReadState(state_);
      if (s.sequence > prev.sequence && s.last_report_ms >= s.last_collection_ms &&
          s.last_collection_ms > prev.last_collection_ms && s.queued == 0) {
        return s;
      }
      if (std::chrono::steady_clock::now() > deadline) Die("no collection within the interval");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void ActivePhase() {
    int cycles = std::max(3, o_.active_seconds / o_.interval_seconds);
    std::printf(
        "== active: run --interval %d --jitter 0; %d cycles of collect, sign, queue, report\n",
        o_.interval_seconds, cycles);
    pid_t pid = StartAgent(o_.interval_seconds, dir_ + "/agent-active.log", "active");
    AgentState s = NextCycle(pid, ReadState(state_));  // one warm-up cycle after the first
    ProcStat st0 = ReadProcStat(pid);
    int64_t cpu0 = ProcessCpuNs(pid);
    int64_t seq0 = s.sequence;
    std::printf("  %5s %5s %9s %8s %8s %8s %8s %7s\n", "cycle", "seq", "cpu_ms", "rss_MB", "pss_MB",
                "uss_MB", "anon_MB", "threads");
    int64_t prev_cpu = cpu0;
    for (int i = 1; i <= cycles; ++i) {
      s = NextCycle(pid, s);
      int64_t cpu = ProcessCpuNs(pid);
      Memory m = ReadMemory(pid);
      auto threads = ReadThreads(pid);
      std::printf("  %5d %5lld %9.2f %8.2f %8.2f %8.2f %8.2f %7zu\n", i,
                  static_cast<long long>(s.sequence), static_cast<double>(cpu - prev_cpu) / 1e6,
                  Mb(m.rss_kb), Mb(m.pss_kb), Mb(m.private_kb), Mb(m.anon_kb), threads.size());
      prev_cpu = cpu;
      rss_mb_ = std::max(rss_mb_, Mb(m.rss_kb));
      pss_mb_ = std::max(pss_mb_, Mb(m.pss_kb));
      uss_mb_ = std::max(uss_mb_, Mb(m.private_kb));
      active_threads_ = threads.size();
    }
    ProcStat st1 = ReadProcStat(pid);
    int64_t cpu1 = ProcessCpuNs(pid);
    collections_ = s.sequence - seq0;
    cpu_per_collection_ms_ =
        static_cast<double>(cpu1 - cpu0) / 1e6 / static_cast<double>(collections_);
    int64_t ticks = (st1.utime + st1.stime) - (st0.utime + st0.stime);
    children_ticks_ = (st1.cutime + st1.cstime) - (st0.cutime + st0.cstime);
    std::printf(
        "  CPU per cycle: %.2f ms (the process's CPU clock, all threads, over %lld collections "
        "counted by the sequence file, the time between them included; /proc/PID/stat "
        "utime+stime: %.1f ms)\n",
        cpu_per_collection_ms_, static_cast<long long>(collections_),
        static_cast<double>(ticks) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK)) /
            static_cast<double>(collections_));
    std::printf(
        "  subprocesses: children's CPU (cutime+cstime) %lld ticks; live children seen (sampled "
        "every 20 ms) %d\n\n",
        static_cast<long long>(children_ticks_), max_children_);
    StopAgent("active");
  }

  void IdlePhase() {
    std::printf(
        "== idle: run --interval 3600 --jitter 0; a %d s window from 2 s after the first "
        "report\n",
        o_.idle_seconds);
    std::string log = dir_ + "/agent-idle.log";
    pid_t pid = StartAgent(3600, log, "idle");
    std::this_thread::sleep_for(std::chrono::seconds(2));  // let the report's work settle
    // Sampled every second so a thread that exits mid-window keeps what it did until then.
    std::map<int, ThreadInfo> first = ReadThreads(pid), last = first;
    int64_t cpu0 = ProcessCpuNs(pid);
    AgentState s0 = ReadState(state_);
    size_t log0 = ReadText(log).size();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < o_.idle_seconds; ++i) {
      std::this_thread::sleep_until(start + std::chrono::seconds(i + 1));
      for (auto& [tid, t] : ReadThreads(pid)) last[tid] = t;
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int64_t cpu1 = ProcessCpuNs(pid);
    AgentState s1 = ReadState(state_);
    auto now = ReadThreads(pid);
    std::printf("  %7s %-18s %10s %12s %9s\n", "tid", "thread", "voluntary", "involuntary",
                "per_s");
    int64_t total = 0;
    for (const auto& [tid, t] : last) {
      const ThreadInfo* f = first.count(tid) ? &first.at(tid) : nullptr;
      int64_t v = t.voluntary - (f ? f->voluntary : 0);
      int64_t n = t.involuntary - (f ? f->involuntary : 0);
      total += v + n;
      const char* note = !f ? " (started in the window)" : !now.count(tid) ? " (exited)" : "";
      std::printf("  %7d %-18s %10lld %12lld %9.3f%s\n", tid, t.name.c_str(),
                  static_cast<long long>(v), static_cast<long long>(n),
                  static_cast<double>(v + n) / seconds, note);
    }
    idle_wakeups_per_sec_ = static_cast<double>(total) / seconds;
    idle_threads_ = now;
    idle_collections_ = s1.sequence - s0.sequence;
    std::printf(
        "  wake-ups (context switches of all threads): %lld in %.1f s = %.3f/s (%.1f/min); CPU "
        "%.2f ms/min; collections in the window: %lld\n",
        static_cast<long long>(total), seconds, idle_wakeups_per_sec_, idle_wakeups_per_sec_ * 60,
        static_cast<double>(cpu1 - cpu0) / 1e6 / seconds * 60,
        static_cast<long long>(idle_collections_));
    if (idle_collections_ > 0) {
      // The daemon also collects on system events (a mount, a USB uevent, a clock step); on a
      // shared machine other people's tests cause them. They are not idle time: say so.
      std::istringstream lines(ReadText(log).substr(log0));
      for (std::string line; std::getline(lines, line);) {
        if (line.find("collecting now") != std::string::npos) {
          std::printf("    not idle: %s\n", line.c_str());
        }
      }
    }
    idle_mem_ = ReadMemory(pid);
    std::printf(
        "  memory: RSS %.2f MB = anonymous %.2f MB + file-backed %.2f MB; PSS %.2f MB; "
        "USS (private) %.2f MB. By mapping (MB):\n",
        Mb(idle_mem_.rss_kb), Mb(idle_mem_.anon_kb), Mb(idle_mem_.rss_kb - idle_mem_.anon_kb),
        Mb(idle_mem_.pss_kb), Mb(idle_mem_.private_kb));
    std::printf("    %7s %7s %7s %7s  %s\n", "rss", "pss", "private", "anon", "mapping");
    auto by = MemoryByMapping(pid);
    for (size_t i = 0; i < by.size() && i < 12; ++i) {
      const Memory& m = by[i].second;
      std::printf("    %7.2f %7.2f %7.2f %7.2f  %s\n", Mb(m.rss_kb), Mb(m.pss_kb), Mb(m.private_kb),
                  Mb(m.anon_kb), by[i].first.c_str());
    }
    libs_ = MappedLibraries(pid);
    // PSS divides a shared page among the processes that map it: the bench's server (and any
    // other gRPC program on this machine) lowers the agent's share of libgrpc, libprotobuf and
    // OpenSSL. On an endpoint nothing else maps libgrpc: stop the server and measure again.
    kill(server_, SIGTERM);
    WaitExit(server_, std::chrono::seconds(10));
    server_ = 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    alone_mem_ = ReadMemory(pid);
    std::string grpc_lib;
    for (const auto& [path, size] : libs_) {
      if (path.find("/libgrpc.so") != std::string::npos) grpc_lib = path;
    }
    sharers_ = grpc_lib.empty() ? 0 : ProcessesMapping(grpc_lib, pid);
    // Other programs here (tests, builds) may map them too. On an endpoint only the agent maps
    // the gRPC stack: count those libraries whole; the rest (libc, libstdc++, OpenSSL) is
    // shared there as here.
    endpoint_pss_kb_ = alone_mem_.pss_kb;
    for (const auto& [path, m] : MemoryByMapping(pid)) {
      std::string file = fs::path(path).filename();
      for (const char* lib : {"libgrpc", "libgpr", "libupb", "libprotobuf", "libabsl_", "libre2",
                              "libcares", "libaddress_sorting"}) {
        if (file.rfind(lib, 0) == 0) {
          endpoint_pss_kb_ += m.rss_kb - m.pss_kb;
          break;
        }
      }
    }
    std::printf(
        "  server stopped: PSS %.2f MB (other processes on this machine that still map "
        "%s: %d); counting the gRPC stack's libraries whole, as on an endpoint: %.2f MB\n\n",
        Mb(alone_mem_.pss_kb), grpc_lib.empty() ? "libgrpc" : grpc_lib.c_str(), sharers_,
        Mb(endpoint_pss_kb_));
    StopAgent("idle");
  }

  // More starts for the latency (the server restarted; it was stopped for the PSS figure).
  void StartsPhase() {
    if (o_.starts == 0) return;
    fs::remove(dir_ + "/ready");
    server_ = Spawn({o_.server_bin, "--listen", address_, "--data-dir", dir_ + "/data",
                     "--ready-file", dir_ + "/ready"},
                    dir_ + "/server.log", dir_ + "/server.log");
    for (int i = 0; i < 400 && ReadText(dir_ + "/ready").empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (ReadText(dir_ + "/ready").empty()) Die("the server did not restart on " + address_);
    std::printf("== starts: run --interval 3600, stopped after its first acknowledged report\n");
    for (int i = 0; i < o_.starts; ++i) {
      StartAgent(3600, dir_ + "/agent-starts.log", "start");
      StopAgent("start");
    }
    std::printf("\n");
  }

  void Binaries() {
    std::printf("== binaries\n");
    for (const auto& bin : {o_.agent_bin, o_.server_bin}) {
      std::error_code ec;
      uintmax_t size = fs::file_size(bin, ec);
      auto elf = ReadElfSizes(bin);
      std::printf("  %-14s file %7.2f MB", fs::path(bin).filename().c_str(),
                  static_cast<double>(size) / 1048576.0);
      if (elf) {
        std::printf(
            ": text %.2f MB, data %.2f MB, bss %.2f MB, debug info %.2f MB",
            static_cast<double>(elf->text) / 1048576.0, static_cast<double>(elf->data) / 1048576.0,
            static_cast<double>(elf->bss) / 1048576.0, static_cast<double>(elf->debug) / 1048576.0);
      }
      std::printf("\n");
      if (bin == o_.agent_bin) {
        agent_file_mb_ = static_cast<double>(size) / 1048576.0;
        if (elf) agent_text_mb_ = static_cast<double>(elf->text) / 1048576.0;
      }
    }
    uintmax_t total = 0;
    for (const auto& [p, s] : libs_) total += s;
    std::printf("  shared objects the agent maps: %zu, %.2f MB on disk; largest:\n", libs_.size(),
                static_cast<double>(total) / 1048576.0);
    for (size_t i = 0; i < libs_.size() && i < 6; ++i) {
      std::printf("    %7.2f MB  %s\n", static_cast<double>(libs_[i].second) / 1048576.0,
                  libs_[i].first.c_str());
    }
    std::printf("\n");
  }

  static void Row(const std::string& figure, const std::string& measured, double value,
                  double target, const char* target_text, const std::string& reference) {
    std::string ratio = "-", verdict;
    if (target > 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", value / target);
      ratio = buf;
      verdict = value <= target ? "meets" : "MISSES";
    }
    std::printf("%-36s %-11s %-9s %-6s %-7s %s\n", figure.c_str(), measured.c_str(), target_text,
                ratio.c_str(), verdict.c_str(), reference.c_str());
  }

  static std::string Fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
  }

  void Summary() {
    std::vector<double> starts = first_ack_ms_;
    std::sort(starts.begin(), starts.end());
    double median = starts[starts.size() / 2], worst = starts.back();
    std::printf("== summary (ratio = measured / target; at most 1 meets it)\n");
    std::printf("%-36s %-11s %-9s %-6s %-7s %s\n", "figure", "measured", "target", "ratio", "",
                "reference (from the issue)");
    Row("RSS, steady (max over cycles)", Fmt("%.1f MB", rss_mb_), rss_mb_, kRssTargetMb, "< 16 MB",
        "osquery ~22 MB at start; Wazuh agent ~35 MB");
    Row("RSS, idle", Fmt("%.1f MB", Mb(idle_mem_.rss_kb)), Mb(idle_mem_.rss_kb), kRssTargetMb,
        "< 16 MB", "osquery watchdog limit 200 MB");
    Row("PSS, bench server running", Fmt("%.1f MB", pss_mb_), pss_mb_, kPssTargetMb, "< 8 MB",
        "shares library pages with the server");
    Row("PSS, server stopped", Fmt("%.1f MB", Mb(alone_mem_.pss_kb)), Mb(alone_mem_.pss_kb),
        kPssTargetMb, "< 8 MB",
        std::to_string(sharers_) + " other processes here map libgrpc (0 on an endpoint)");
    Row("PSS, gRPC stack counted whole", Fmt("%.1f MB", Mb(endpoint_pss_kb_)), Mb(endpoint_pss_kb_),
        kPssTargetMb, "< 8 MB", "estimate for an endpoint");
    Row("USS (private: the floor of PSS)", Fmt("%.1f MB", uss_mb_), uss_mb_, kPssTargetMb, "< 8 MB",
        "");
    Row("CPU per cycle (collect..report)", Fmt("%.2f ms", cpu_per_collection_ms_),
        cpu_per_collection_ms_, kCpuPerCollectionTargetMs, "< 15 ms", "osquery watchdog 10% CPU");
    Row("subprocesses", Fmt("%.0f", static_cast<double>(children_ticks_ + max_children_)), 0, 0,
        "none", children_ticks_ + max_children_ == 0 ? "none seen" : "SUBPROCESS SEEN");
    Row("idle wake-ups per second", Fmt("%.3f", idle_wakeups_per_sec_), idle_wakeups_per_sec_,
        kIdleWakeupsTargetPerSec, "<= 0.3/s",
        idle_collections_ > 0 ? "event-triggered collections in the window (see above)" : "");
    Row("start to first acknowledged att.", Fmt("%.0f ms", worst), worst, kFirstAckTargetMs,
        "<= 250 ms",
        Fmt("worst of %.0f starts; median ", static_cast<double>(starts.size())) +
            Fmt("%.0f ms", median));
    Row("vigil-agent file size", Fmt("%.2f MB", agent_file_mb_), 0, 0, "-",
        Fmt("text %.2f MB", agent_text_mb_));
    Row("threads, active / idle",
        std::to_string(active_threads_) + " / " + std::to_string(idle_threads_.size()), 0, 0, "-",
        "");
    std::printf("threads when idle:");
    for (const auto& [tid, t] : idle_threads_) std::printf(" %s", t.name.c_str());
    std::printf("\n");
  }

  void Cleanup() {
    for (pid_t* p : {&agent_, &server_}) {
      if (*p > 0) {
        kill(*p, SIGTERM);
        WaitExit(*p, std::chrono::seconds(10));
        *p = 0;
      }
    }
    if (dir_.empty()) return;
    if (o_.keep) {
      std::printf("kept %s\n", dir_.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  Options o_;
  std::string dir_, state_, address_;
  pid_t server_ = 0, agent_ = 0;
  std::vector<double> first_ack_ms_;
  double rss_mb_ = 0, pss_mb_ = 0, uss_mb_ = 0;
  double cpu_per_collection_ms_ = 0, idle_wakeups_per_sec_ = 0;
  double agent_file_mb_ = 0, agent_text_mb_ = 0;
  int64_t collections_ = 0, children_ticks_ = 0, idle_collections_ = 0;
  int max_children_ = 0, sharers_ = 0;
  int64_t endpoint_pss_kb_ = 0;
  size_t active_threads_ = 0;
  Memory idle_mem_, alone_mem_;
  std::map<int, ThreadInfo> idle_threads_;
  std::vector<std::pair<std::string, uintmax_t>> libs_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--server-bin") {
      o.server_bin = value();
    } else if (a == "--agent-bin") {
      o.agent_bin = value();
    } else if (a == "--root") {
      o.root = value();
    } else if (a == "--active") {
      o.active_seconds = std::atoi(value().c_str());
    } else if (a == "--interval") {
      o.interval_seconds = std::atoi(value().c_str());
    } else if (a == "--idle") {
      o.idle_seconds = std::atoi(value().c_str());
    } else if (a == "--starts") {
      o.starts = std::atoi(value().c_str());
    } else if (a == "--keep") {
      o.keep = true;
    } else {
      std::fprintf(
          stderr,
          "usage: footprint_bench [--server-bin PATH] [--agent-bin PATH] [--root DIR] "
          "[--active SECONDS] [--interval SECONDS] [--idle SECONDS] [--starts N] [--keep]\n");
      return 2;
    }
  }
  if (o.server_bin.empty()) o.server_bin = FindNextToSelf("vigil-server", "server");
  if (o.agent_bin.empty()) o.agent_bin = FindNextToSelf("vigil-agent", "agent");
  if (o.server_bin.empty() || o.agent_bin.empty()) {
    std::fprintf(stderr,
                 "footprint_bench: vigil-server / vigil-agent not found next to this "
                 "program; pass --server-bin and --agent-bin\n");
    return 2;
  }
  if (o.interval_seconds < 1 || o.active_seconds < 1 || o.idle_seconds < 1 || o.starts < 0) {
    std::fprintf(stderr, "footprint_bench: --active, --interval and --idle must be at least 1\n");
    return 2;
  }
  o.root = fs::absolute(o.root).string();
  signal(SIGPIPE, SIG_IGN);
  try {
    Bench bench(o);
    bench.Run();
  } catch (const BenchError& e) {
    std::fprintf(stderr, "footprint_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
