// vigil-loadgen: the composition root. Reads the enrollment bundle, enrolls --agents simulated
// agents (phase 1), connects, then drives Report calls from --threads client threads, each with
// its own gRPC completion queue and its own share of the agents (phase 2), and prints what it
// measured. See loadgen_lib.h for the pieces that do not talk to a server.
//
// Each agent has at most one Report call in flight: a device's sequence numbers must reach the
// server in order (a later sequence committed first would make the earlier one a replay). In the
// open loop an agent whose previous call is still unanswered sends its next one as soon as that
// answer comes, and the latency still counts from the scheduled time.
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "proto/pki.h"
#include "proto/signing.h"
#include "tools/loadgen/loadgen_lib.h"
#include "vigil/v1/agent_service.grpc.pb.h"

namespace vigil::loadgen {
namespace {

using Steady = std::chrono::steady_clock;

int Fail(int code, const std::string& message) {
  std::cerr << "vigil-loadgen: " << message << "\n";
  return code;
}

int64_t Micros(Steady::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Cpu {
  double user_s = 0, system_s = 0;
};

Cpu ProcessCpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {s(ru.ru_utime), s(ru.ru_stime)};
}

// utime + stime of another process from /proc/PID/stat, in seconds; < 0 when unreadable.
double OtherProcessCpu(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  size_t paren = line.rfind(')');  // the command name may contain spaces and parentheses
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 2));
  std::string f;
  // Fields after the name start at 3 (state); utime and stime are fields 14 and 15.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Busy and total CPU seconds of the whole machine since boot (first line of /proc/stat).
struct MachineCpu {
  double busy_s = -1, total_s = -1;
};

MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long v[8] = {};  // user nice system idle iowait irq softirq steal
  if (!(in >> cpu) || cpu != "cpu") return {};
  for (auto& x : v) {
    if (!(in >> x)) return {};
  }
  double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  unsigned long long total = 0;
  for (auto x : v) total += x;
  return {static_cast<double>(total - v[3] - v[4]) / tick, static_cast<double>(total) / tick};
}

std::string RpcError(const grpc::Status& s) {
  return CodeName(s.error_code()) + ": " + s.error_message();
}

// How the agents reach the server.
struct Target {
  std::string server;
  bool insecure = false;
  std::string ca_pem;
};

// A channel with its own connection: gRPC would otherwise let channels with equal arguments
// share one.
std::shared_ptr<grpc::Channel> MakeChannel(const Target& t, const std::string& client_key_pem,
                                           const std::string& client_cert_pem) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (t.insecure) {
    return grpc::CreateCustomChannel(t.server, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = t.ca_pem;
  tls.pem_private_key = client_key_pem;
  tls.pem_cert_chain = client_cert_pem;
  return grpc::CreateCustomChannel(t.server, grpc::SslCredentials(tls), args);
}

struct SimAgent;

struct Tag {
  enum Kind { kReport, kAlarm };
  SimAgent* agent;
  Kind kind;
};

// One simulated agent: its key and identity, then the state of its one call in flight.
struct SimAgent {
  SimAgent(uint32_t i, signing::DeviceKey k) : index(i), key(std::move(k)) {}

  uint32_t index;
  signing::DeviceKey key;
  std::string key_pem;
  std::string device_id;
  std::string cert_pem;
  std::shared_ptr<grpc::Channel> own_channel;  // --mtls: its own connection and certificate
  v1::AgentService::Stub* stub = nullptr;
  std::unique_ptr<v1::AgentService::Stub> own_stub;

  v1::Attestation attestation;  // the template; sequence and issued_at set per signature
  uint64_t next_sequence = 1;
  uint64_t calls = 0;  // Report calls issued so far (the open loop's schedule index)

  std::unique_ptr<grpc::ClientContext> context;
  v1::ReportRequest request;
  v1::ReportResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ReportResponse>> reader;
  Steady::time_point measured_from;
  Steady::time_point due;
  std::unique_ptr<grpc::Alarm> alarm;
  Tag report_tag{this, Tag::kReport};
  Tag alarm_tag{this, Tag::kAlarm};
};

// Phase 1 for one agent: a new key, a CSR for it, and the Enroll call.
Status EnrollOne(SimAgent* a, v1::AgentService::Stub& stub, const std::string& secret,
                 uint32_t timeout_s, int64_t* latency_us) {
  auto pem = a->key.ToPem();
  if (!pem.ok()) return pem.status();
  a->key_pem = *pem;
  auto csr = pki::MakeCsr(a->key_pem, "vigil-device");
  if (!csr.ok()) return csr.status();
  v1::EnrollRequest req;
  req.set_enroll_secret(secret);
  req.set_public_key(a->key.PublicKey());
  *req.mutable_platform() = SampleAttestation("", a->index).platform();
  req.set_hostname(req.platform().hostname());
  req.set_csr(*csr);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  v1::EnrollResponse resp;
  auto t0 = Steady::now();
  grpc::Status s = stub.Enroll(&ctx, req, &resp);
  *latency_us = Micros(Steady::now() - t0);
  if (!s.ok()) {
    std::string hint;
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      hint = " (is the bundle's enroll secret valid on this server?)";
    } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      hint = " (is vigil-server running there, with TLS unless --insecure?)";
    }
    return Status::Unavailable("enrollment of agent " + std::to_string(a->index) +
                               " refused: " + RpcError(s) + hint);
  }
  if (resp.status() == v1::PENDING) {
    return Status::FailedPrecondition(
        "the server keeps new devices PENDING until an admin approves them "
        "(--approve-devices); run the load against a server without it");
  }
  a->device_id = resp.device_id();
  a->cert_pem = resp.client_certificate();
  a->attestation = SampleAttestation(a->device_id, a->index);
  return Status::Ok();
}

// Runs `work(i)` for i in [begin, n) on `threads` threads; stops early once `failed` is set.
template <typename Work>
void Parallel(uint32_t begin, uint32_t n, uint32_t threads, const std::atomic<bool>& failed,
              Work work) {
  std::atomic<uint32_t> next{begin};
  std::vector<std::thread> pool;
  for (uint32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (uint32_t i = next++; i < n && !failed.load(); i = next++) work(i);
    });
  }
  for (auto& th : pool) th.join();
}

// Phase 2 on one client thread: its agents, its completion queue, its counters.
class Driver {
 public:
  Driver(const Options& o, Steady::time_point start, Steady::time_point end)
      : o_(o), start_(start), end_(end), open_loop_(o.rate > 0) {}

  void Add(SimAgent* a) { agents_.push_back(a); }

  void Run() {
    active_ = agents_.size();
    if (active_ == 0) return;
    std::this_thread::sleep_until(start_);
    for (SimAgent* a : agents_) Next(a, Steady::now());
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
      auto* t = static_cast<Tag*>(tag);
      if (t->kind == Tag::kAlarm) {
        t->agent->alarm.reset();
        Issue(t->agent, t->agent->due);
      } else {
        Answered(t->agent);
      }
    }
  }

  RunStats& stats() { return stats_; }
  Steady::time_point last_answer() const { return last_answer_; }

 private:
  // Sends the agent's next call now or when it is due, or retires the agent.
  void Next(SimAgent* a, Steady::time_point now) {
    if (!open_loop_) {
      if (now >= end_) return Retire();
      return Issue(a, now);
    }
    Steady::time_point due = start_ + OpenLoopOffset(o_, a->index, a->calls);
    if (due >= end_) return Retire();
    if (now >= end_) {
      // Calls that were due before the end but could not go out: the rate was not sustained.
      for (uint64_t k = a->calls; start_ + OpenLoopOffset(o_, a->index, k) < end_; ++k) {
        ++stats_.behind_schedule;
      }
      return Retire();
    }
    if (due <= now) return Issue(a, due);
    a->due = due;
    a->alarm = std::make_unique<grpc::Alarm>();
    a->alarm->Set(&cq_,
                  std::chrono::system_clock::now() +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(due - now),
                  &a->alarm_tag);
  }

  void Issue(SimAgent* a, Steady::time_point measured_from) {
    a->request.Clear();
    a->response.Clear();
    for (uint32_t k = 0; k < o_.batch; ++k) {
      a->attestation.set_sequence(a->next_sequence++);
      int64_t now_ms = clock_.NowMillis();
      a->attestation.mutable_issued_at()->set_seconds(now_ms / 1000);
      a->attestation.mutable_issued_at()->set_nanos(static_cast<int32_t>(now_ms % 1000) * 1000000);
      int64_t cpu0 = ThreadCpuNs();
      auto signed_att = signing::SignAttestation(a->attestation, a->key);
      stats_.sign_cpu_ns += ThreadCpuNs() - cpu0;
      if (!signed_att.ok()) {
        ++stats_.sign_failures;
        stats_.first_message.emplace("sign", signed_att.status().message());
        return Retire();
      }
      ++stats_.signed_count;
      *a->request.add_attestations() = std::move(signed_att).value();
    }
    ++a->calls;
    a->measured_from = measured_from;
    a->context = std::make_unique<grpc::ClientContext>();
    a->context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o_.timeout_s));
    a->reader = a->stub->PrepareAsyncReport(a->context.get(), a->request, &cq_);
    a->reader->StartCall();
    a->reader->Finish(&a->response, &a->status, &a->report_tag);
  }

  void Answered(SimAgent* a) {
    Steady::time_point now = Steady::now();
    last_answer_ = std::max(last_answer_, now);
    stats_.latency_us.push_back(Micros(now - a->measured_from));
    ++stats_.reports;
    auto sent = static_cast<uint64_t>(a->request.attestations_size());
    stats_.attestations_sent += sent;
    if (!a->status.ok()) {
      int code = a->status.error_code();
      ++stats_.rpc_errors[code];
      stats_.rpc_failed_attestations += sent;
      stats_.first_message.emplace("rpc " + std::to_string(code), a->status.error_message());
    } else if (static_cast<uint64_t>(a->response.acks_size()) != sent) {
      ++stats_.malformed_responses;
    } else {
      for (const auto& ack : a->response.acks()) {
        if (ack.code() == 0) {
          ++stats_.acked_ok;
        } else if (ack.code() == 6) {
          ++stats_.duplicates;
        } else {
          ++stats_.rejected_by_code[ack.code()];
          stats_.first_message.emplace("ack " + std::to_string(ack.code()), ack.message());
        }
      }
    }
    a->reader.reset();
    a->context.reset();
    Next(a, now);
  }

  void Retire() {
    if (--active_ == 0) cq_.Shutdown();
  }

  const Options& o_;
  const Steady::time_point start_, end_;
  const bool open_loop_;
  SystemClock clock_;
  grpc::CompletionQueue cq_;
  std::vector<SimAgent*> agents_;
  size_t active_ = 0;
  RunStats stats_;
  Steady::time_point last_answer_{};
};

int Main(int argc, char** argv) {
  bool help = false;
  auto parsed = ParseOptions(argc, argv, &help);
  if (!parsed.ok()) return Fail(2, parsed.status().message() + "\n\n" + kUsage);
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  Options o = std::move(parsed).value();
  auto bundle = agent::LoadBundle(o.bundle_path);
  if (!bundle.ok()) return Fail(2, "--bundle: " + bundle.status().message());
  Target target{o.server.empty() ? bundle->server() : o.server, o.insecure,
                bundle->ca_certificate()};
  if (target.insecure && !IsLoopback(target.server)) {
    return Fail(2, "--insecure is only for a server on this machine (127.0.0.1, localhost); " +
                       target.server + " is not");
  }
  o.threads = std::min(o.threads, o.agents);
  if (!o.mtls) o.connections = std::min(o.connections, o.agents);

  // The shared connections: enrollment always uses them (it needs no client certificate), and
  // without --mtls the agents report over them too.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (uint32_t c = 0; c < o.connections; ++c) {
    channels.push_back(MakeChannel(target, "", ""));
    stubs.push_back(v1::AgentService::NewStub(channels.back()));
  }

  // Phase 1: enrollment. The first agent alone, so a wrong secret or an unreachable server is
  // one clear error (and not a burst of failures the server's per-peer limiter counts).
  std::vector<std::unique_ptr<SimAgent>> agents(o.agents);
  std::vector<int64_t> enroll_latency_us(o.agents);
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  auto enroll = [&](uint32_t i) {
    auto key = signing::DeviceKey::Generate();
    Status s = key.ok() ? Status::Ok() : key.status();
    if (s.ok()) {
      agents[i] = std::make_unique<SimAgent>(i, std::move(key).value());
      s = EnrollOne(agents[i].get(), *stubs[i % stubs.size()], bundle->enroll_secret(), o.timeout_s,
                    &enroll_latency_us[i]);
    }
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!failed.exchange(true)) first_error = s;
    }
  };
  auto enroll_start = Steady::now();
  enroll(0);
  if (!failed) Parallel(1, o.agents, o.threads, failed, enroll);
  double enroll_s = Seconds(Steady::now() - enroll_start);
  if (failed) return Fail(3, first_error.message());

  Summary summary;
  summary.server = target.server;
  summary.enrolled = o.agents;
  summary.enroll_s = enroll_s;
  std::sort(enroll_latency_us.begin(), enroll_latency_us.end());
  summary.enroll_latency_us = std::move(enroll_latency_us);
  for (const auto& a : agents) summary.client_certificates += a->cert_pem.empty() ? 0 : 1;
  summary.cores = std::thread::hardware_concurrency();
  {
    auto sample = signing::SignAttestation(agents[0]->attestation, agents[0]->key);
    if (sample.ok()) summary.attestation_bytes = sample->ByteSizeLong();
  }

  // Connections for the run, each connected before the clock starts.
  std::vector<grpc::Channel*> to_connect;
  if (o.mtls) {
    if (summary.client_certificates != o.agents) {
      return Fail(3, "--mtls: the server issued no client certificate at enrollment");
    }
    for (auto& a : agents) {
      a->own_channel = MakeChannel(target, a->key_pem, a->cert_pem);
      a->own_stub = v1::AgentService::NewStub(a->own_channel);
      a->stub = a->own_stub.get();
      to_connect.push_back(a->own_channel.get());
    }
    summary.transport = "mutual TLS (one connection per agent)";
  } else {
    for (auto& a : agents) a->stub = stubs[a->index % stubs.size()].get();
    for (auto& c : channels) to_connect.push_back(c.get());
    summary.transport = target.insecure ? "plaintext" : "TLS";
  }
  summary.channels = static_cast<uint32_t>(to_connect.size());
  auto connect_start = Steady::now();
  Parallel(0, static_cast<uint32_t>(to_connect.size()), o.threads, failed, [&](uint32_t i) {
    auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(o.timeout_s);
    if (!to_connect[i]->WaitForConnected(deadline)) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!failed.exchange(true)) {
        first_error = Status::Unavailable("connection " + std::to_string(i) + " to " +
                                          target.server + " did not become ready within " +
                                          std::to_string(o.timeout_s) + " s");
      }
    }
  });
  summary.connect_s = Seconds(Steady::now() - connect_start);
  if (failed) return Fail(3, first_error.message());

  // Phase 2: the measured run.
  auto start = Steady::now() + std::chrono::milliseconds(20);  // every thread starts together
  auto end = start + std::chrono::nanoseconds(static_cast<int64_t>(o.duration_s * 1e9));
  std::vector<std::unique_ptr<Driver>> drivers;
  for (uint32_t t = 0; t < o.threads; ++t)
    drivers.push_back(std::make_unique<Driver>(o, start, end));
  for (auto& a : agents) drivers[a->index % o.threads]->Add(a.get());
  Cpu cpu0 = ProcessCpu();
  MachineCpu machine0 = ReadMachineCpu();
  double server_cpu0 = o.server_pid > 0 ? OtherProcessCpu(o.server_pid) : -1;
  std::vector<std::thread> pool;
  for (auto& d : drivers) pool.emplace_back([&d] { d->Run(); });
  for (auto& th : pool) th.join();
  Cpu cpu1 = ProcessCpu();
  MachineCpu machine1 = ReadMachineCpu();
  if (machine0.total_s >= 0 && machine1.total_s > machine0.total_s) {
    summary.machine_busy_s = machine1.busy_s - machine0.busy_s;
    summary.machine_total_s = machine1.total_s - machine0.total_s;
  }
  if (o.server_pid > 0) {
    double server_cpu1 = OtherProcessCpu(o.server_pid);
    if (server_cpu0 < 0 || server_cpu1 < 0) {
      std::cerr << "vigil-loadgen: --server-pid " << o.server_pid
                << ": cannot read /proc/PID/stat; server CPU not reported\n";
    } else {
      summary.server_cpu_s = server_cpu1 - server_cpu0;
    }
  }
  summary.cpu_user_s = cpu1.user_s - cpu0.user_s;
  summary.cpu_system_s = cpu1.system_s - cpu0.system_s;

  RunStats total;
  Steady::time_point last = start;
  for (auto& d : drivers) {
    last = std::max(last, d->last_answer());
    total.Merge(std::move(d->stats()));
  }
  summary.run_s = Seconds(last - start);
  std::sort(total.latency_us.begin(), total.latency_us.end());
  std::cout << (o.json ? FormatJson(o, summary, total) : FormatText(o, summary, total));
  return total.NotOk() == 0 && total.sign_failures == 0 && total.attestations_sent > 0 ? 0 : 1;
}

}  // namespace
}  // namespace vigil::loadgen

int main(int argc, char** argv) { return vigil::loadgen::Main(argc, argv); }
