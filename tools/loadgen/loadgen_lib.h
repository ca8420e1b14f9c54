// The parts of vigil-loadgen that do not talk to a server: flags, the attestation it sends, the
// open-loop schedule, the counters each client thread keeps, and the report (text or JSON).
//
// vigil-loadgen simulates N agents against a real vigil-server: real Ed25519 keys, real Enroll
// calls (with a CSR, so the server issues client certificates), then Report calls carrying
// attestations each agent signs inline with increasing sequence numbers. Everything here is
// plain data and pure functions, so it is tested without a server (loadgen_test.cc); the gRPC
// side lives in loadgen.cc. RunStats is owned by one client thread and merged at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"

namespace vigil::loadgen {

extern const char* const kUsage;

struct Options {
  std::string bundle_path;
  std::string server;  // empty: the bundle's
  bool insecure = false;
  // Each agent reports over its own TLS connection with the client certificate it got at
  // enrollment (what real agents do; needed when the server runs --require-client-cert).
  bool mtls = false;
  uint32_t agents = 100;
  double duration_s = 10;
  double rate = 0;  // attestations per second over all agents; 0 = closed loop
  uint32_t batch = 1;
  uint32_t connections = 4;
  uint32_t threads = 2;
  uint32_t timeout_s = 10;
  bool json = false;
  int server_pid = 0;  // optional: report this process's CPU time over the run (the server's)
};

// Parses argv[1..]. Errors are InvalidArgument and name the flag; `--help` is reported through
// `*help` (the caller prints kUsage).
Result<Options> ParseOptions(int argc, char** argv, bool* help);

// True for 127.x.y.z, localhost and [::1] (HOST:PORT): where plaintext is allowed.
bool IsLoopback(const std::string& address);

// A realistic attestation of the three checks (screen_lock, password_policy, usb_storage) with
// typed evidence and provenance of the size a Debian laptop produces; the caller sets the
// sequence and issued_at before each signature.
v1::Attestation SampleAttestation(const std::string& device_id, uint32_t agent_index);

// Open loop: Report calls go out at fixed intervals of batch/rate seconds over the whole fleet,
// agents in turn, so agent `index` sends its call number `k` (from 0) at this offset from the
// start. Latency is measured from this time, not from when the call could actually be sent, so
// a slow server cannot hide its queueing (no coordinated omission).
std::chrono::nanoseconds OpenLoopOffset(const Options& o, uint32_t index, uint64_t k);

// Nearest-rank percentile (0 < p <= 100) of sorted values; 0 for none.
int64_t Percentile(const std::vector<int64_t>& sorted, double p);

// What one client thread saw; merged into one at the end.
struct RunStats {
  uint64_t reports = 0;                      // Report calls completed (OK or not)
  uint64_t attestations_sent = 0;            // in those calls
  uint64_t acked_ok = 0;                     // ack code 0
  uint64_t duplicates = 0;                   // ack code 6
  std::map<int, uint64_t> rejected_by_code;  // other ack codes, per attestation
  std::map<int, uint64_t> rpc_errors;        // gRPC status of failed calls, per call
  uint64_t rpc_failed_attestations = 0;      // attestations in calls that failed
  uint64_t malformed_responses = 0;          // ack count differs from the batch size
  uint64_t behind_schedule = 0;  // open loop: calls due before the end that never went out
  std::map<std::string, std::string> first_message;  // "ack 8", "rpc 14" -> an example message
  std::vector<int64_t> latency_us;                   // per Report call
  int64_t sign_cpu_ns = 0;                           // thread CPU time spent signing
  uint64_t signed_count = 0;
  uint64_t sign_failures = 0;  // the agent stopped: a key that cannot sign

  void Merge(RunStats&& other);
  uint64_t NotOk() const { return attestations_sent - acked_ok; }
};

// Everything the report prints besides RunStats.
struct Summary {
  std::string server;
  std::string transport;  // "TLS", "mutual TLS", "plaintext"
  uint32_t channels = 0;
  size_t attestation_bytes = 0;  // one signed attestation, serialized
  uint32_t enrolled = 0;
  uint32_t client_certificates = 0;
  double enroll_s = 0;
  std::vector<int64_t> enroll_latency_us;  // sorted
  double connect_s = 0;
  double run_s = 0;       // first call to last answer
  double cpu_user_s = 0;  // this process, over the run
  double cpu_system_s = 0;
  double server_cpu_s = -1;  // --server-pid, over the run; < 0 when not measured
  // The whole machine over the run (/proc/stat): busy and available CPU seconds; < 0 when not
  // measured. Shows whether other processes competed with the run.
  double machine_busy_s = -1;
  double machine_total_s = -1;
  unsigned cores = 0;
};

std::string FormatText(const Options& o, const Summary& s, const RunStats& r);
std::string FormatJson(const Options& o, const Summary& s, const RunStats& r);

// "RESOURCE_EXHAUSTED" for 8, "UNAVAILABLE" for 14, ...; the number for anything else.
std::string CodeName(int code);

}  // namespace vigil::loadgen
