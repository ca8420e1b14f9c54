#include "tools/loadgen/loadgen_lib.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <thread>
#include <tuple>

#include "collectors/collectors.h"
#include "collectors/policy.h"
#include "common/flags.h"

namespace vigil::loadgen {

const char* const kUsage =
    R"(usage: vigil-loadgen --bundle FILE [options]

Simulates N agents against a running vigil-server: each gets a real Ed25519 key and enrolls for
real (Enroll with a CSR; the server issues a client certificate), then reports attestations with
increasing sequence numbers, issued now and signed inline by its key, over gRPC with TLS. Prints
throughput, latency per Report call (p50/p90/p99/max), acknowledgements by code and RPC errors.

  --bundle FILE        enrollment bundle from `vigil-server init` (server, CA, enroll secret)
  --server HOST:PORT   connect here instead of the bundle's address
  --insecure           plaintext gRPC (a server started with --insecure; loopback only)
  --mtls               every agent reports over its own TLS connection with its own client
                       certificate, as real agents do (required when the server runs with
                       --require-client-cert); --connections is then ignored
  --agents N           simulated agents, each a new device on the server (default 100)
  --duration SECONDS   how long to report (default 10; fractions allowed)
  --rate R             attestations per second over all agents, sent at fixed intervals with
                       latency measured from the scheduled time (open loop); 0 = each agent
                       sends its next call as soon as the previous one is answered (closed loop,
                       default)
  --batch K            attestations per Report call (default 1, at most 100)
  --connections C      gRPC connections the agents share (default 4). Real agents each have
                       their own; thousands of TLS connections from one process measure the
                       client, not the server
  --threads T          client threads driving the calls (default: the number of cores)
  --timeout SECONDS    deadline of each call (default 10)
  --server-pid PID     also print that process's CPU time over the run (/proc/PID/stat)
  --json               print the figures as one JSON object

The server limits each device to 60 attestations a minute (bursts of 120) by default; beyond
that it answers 8 RESOURCE_EXHAUSTED. Measure with `vigil-server --report-rate 0`, or keep
--rate at most one attestation per agent per second. The server also answers 8 ("server busy")
when more than its --max-inflight attestations (default 2000) are being verified or committed
at once: keep agents x batch below that, or raise it. Each run enrolls --agents new devices.

Exit codes: 0 every attestation acknowledged OK; 1 any attestation not acknowledged OK (a
rejection, a duplicate or an RPC error); 2 bad flags or bundle; 3 could not connect or enroll.
)";

namespace {

Result<double> ParseNumber(const Flags& f, const std::string& name, double fallback, double min,
                           double max) {
  auto v = f.Get(name);
  if (!v) return fallback;
  double out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (v->empty() || ec != std::errc() || p != v->data() + v->size() || !std::isfinite(out) ||
      out < min || out > max) {
    std::ostringstream m;
    m << "--" << name << ": must be a number from " << min << " to " << max << ", got '" << *v
      << "'";
    return Status::InvalidArgument(m.str());
  }
  return out;
}

Result<uint32_t> ParseCount(const Flags& f, const std::string& name, uint32_t fallback,
                            uint32_t min, uint32_t max) {
  auto v = f.GetUint(name, fallback);
  if (!v.ok()) return v.status();
  if (*v < min || *v > max) {
    return Status::InvalidArgument("--" + name + ": must be " + std::to_string(min) + ".." +
                                   std::to_string(max) + ", got " + std::to_string(*v));
  }
  return static_cast<uint32_t>(*v);
}

v1::Provenance* From(v1::Provenance* p, const std::string& source, const std::string& key,
                     const std::string& raw, uint32_t line, bool locked = false) {
  p->set_source(source);
  p->set_key(key);
  p->set_raw(raw);
  p->set_line(line);
  p->set_locked(locked);
  p->set_user_can_override(!locked && line == 0);
  return p;
}

void SetInt(v1::IntFact* f, int64_t v, const std::string& source, const std::string& key,
            const std::string& raw, uint32_t line, bool locked = false) {
  f->set_value(v);
  From(f->mutable_from(), source, key, raw, line, locked);
}

void SetBool(v1::BoolFact* f, bool v, const std::string& source, const std::string& key,
             const std::string& raw, uint32_t line, bool locked = false) {
  f->set_value(v);
  From(f->mutable_from(), source, key, raw, line, locked);
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

double Ms(int64_t us) { return static_cast<double>(us) / 1000.0; }

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Mode(const Options& o) {
  return o.rate > 0 ? "open loop at " + Fixed(o.rate, o.rate < 10 ? 1 : 0) + " attestations/s"
                    : "closed loop";
}

// Which client answers explain a code (printed beside the count).
std::string Hint(const std::string& key) {
  if (key == "ack 8") {
    return "the server's per-device rate limit (vigil-server --report-rate 0), or when the "
           "message says busy its admission limit (--max-inflight)";
  }
  if (key == "ack 9") return "devices waiting for approval (server runs --approve-devices)";
  if (key == "rpc 16") return "the server requires client certificates: add --mtls";
  if (key == "rpc 4") return "calls exceeded --timeout";
  return "";
}

}  // namespace

Result<Options> ParseOptions(int argc, char** argv, bool* help) {
  FlagSpec spec{{"bundle", "server", "agents", "duration", "rate", "batch", "connections",
                 "threads", "timeout", "server-pid"},
                {"insecure", "mtls", "json", "help"}};
  auto flags = Flags::Parse(argc, argv, 1, spec);
  if (!flags.ok()) return flags.status();
  *help = flags->Has("help");
  Options o;
  if (*help) return o;
  if (!flags->positional().empty()) {
    return Status::InvalidArgument("unexpected argument '" + flags->positional()[0] + "'");
  }
  auto bundle = flags->Get("bundle");
  if (!bundle || bundle->empty()) return Status::InvalidArgument("--bundle FILE is required");
  o.bundle_path = *bundle;
  o.server = flags->GetOr("server", "");
  if (flags->Has("server") && o.server.find(':') == std::string::npos) {
    return Status::InvalidArgument("--server: expected HOST:PORT, got '" + o.server + "'");
  }
  o.insecure = flags->Has("insecure");
  o.mtls = flags->Has("mtls");
  o.json = flags->Has("json");
  if (o.insecure && o.mtls) {
    return Status::InvalidArgument("--mtls needs TLS; it cannot be combined with --insecure");
  }
  unsigned cores = std::thread::hardware_concurrency();
  struct {
    const char* name;
    uint32_t fallback, min, max;
    uint32_t* out;
  } counts[] = {{"agents", 100, 1, 100000, &o.agents},
                {"batch", 1, 1, 100, &o.batch},
                {"connections", 4, 1, 1024, &o.connections},
                {"threads", cores == 0 ? 2 : cores, 1, 256, &o.threads},
                {"timeout", 10, 1, 600, &o.timeout_s}};
  for (auto& c : counts) {
    auto v = ParseCount(*flags, c.name, c.fallback, c.min, c.max);
    if (!v.ok()) return v.status();
    *c.out = *v;
  }
  auto pid = ParseCount(*flags, "server-pid", 0, 0, 1u << 30);
  if (!pid.ok()) return pid.status();
  o.server_pid = static_cast<int>(*pid);
  auto duration = ParseNumber(*flags, "duration", 10, 0.1, 86400);
  if (!duration.ok()) return duration.status();
  o.duration_s = *duration;
  auto rate = ParseNumber(*flags, "rate", 0, 0, 10000000);
  if (!rate.ok()) return rate.status();
  o.rate = *rate;
  if (o.rate > 0 && o.rate * o.duration_s < o.batch) {
    return Status::InvalidArgument("--rate: " + Fixed(o.rate, 2) + " attestations/s for " +
                                   Fixed(o.duration_s, 1) + " s is less than one --batch of " +
                                   std::to_string(o.batch));
  }
  return o;
}

bool IsLoopback(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

v1::Attestation SampleAttestation(const std::string& device_id, uint32_t agent_index) {
  char host[32];
  std::snprintf(host, sizeof host, "loadgen-%05u", agent_index);
  v1::Attestation a;
  a.set_device_id(device_id);
  a.set_agent_version("0.1.0");
  auto* p = a.mutable_platform();
  p->set_os("linux");
  p->set_os_name("Debian GNU/Linux 12 (bookworm)");
  p->set_os_version("12");
  p->set_kernel("6.1.0-18-amd64");
  p->set_arch("x86_64");
  p->set_hostname(host);
  p->set_machine_id(std::string(32, 'a' + static_cast<char>(agent_index % 26)));
  a.set_policy_version(collectors::PolicyVersion(collectors::DefaultPolicy()));

  // screen_lock: one GNOME user with dconf-locked settings, as on a managed laptop.
  auto* sl_check = a.add_checks();
  sl_check->set_check(collectors::kScreenLock);
  sl_check->set_status(v1::PASS);
  sl_check->set_reason("alice (GNOME): locks after 300 s idle with no grace; locked by dconf");
  auto* sl = sl_check->mutable_evidence()->mutable_screen_lock();
  sl->add_sessions_found("/usr/share/wayland-sessions/gnome.desktop");
  sl->add_sessions_found("/usr/share/xsessions/gnome-xorg.desktop");
  auto* u = sl->add_users();
  u->set_user("alice");
  u->set_uid(1000);
  u->set_desktop(v1::GNOME);
  const std::string db = "/etc/dconf/db/local.d/00-vigil";
  SetInt(u->mutable_idle_seconds(), 300, db, "/org/gnome/desktop/session/idle-delay", "uint32 300",
         2, true);
  SetBool(u->mutable_lock_enabled(), true, db, "/org/gnome/desktop/screensaver/lock-enabled",
          "true", 4, true);
  SetInt(u->mutable_lock_delay_seconds(), 0, db, "/org/gnome/desktop/screensaver/lock-delay",
         "uint32 0", 5, true);
  SetBool(u->mutable_idle_activation_enabled(), true, "default:gnome",
          "/org/gnome/desktop/screensaver/idle-activation-enabled", "true", 0);
  SetBool(u->mutable_lock_screen_disabled(), false, "default:gnome",
          "/org/gnome/desktop/lockdown/disable-lock-screen", "false", 0);
  SetInt(u->mutable_suspend_idle_seconds(), 1200, "default:gnome",
         "/org/gnome/settings-daemon/plugins/power/sleep-inactive-ac-timeout", "1200", 0);
  SetBool(u->mutable_lock_on_suspend(), true, db, "/org/gnome/desktop/screensaver/lock-enabled",
          "true", 4, true);
  SetInt(u->mutable_effective_lock_seconds(), 300, db, "screensaver", "idle-delay 300 + 0", 2,
         true);
  SetInt(u->mutable_effective_grace_seconds(), 0, db, "screensaver", "lock-delay 0", 5, true);
  u->set_locker("gnome-shell");
  u->set_desktop_rule("the only desktop installed");
  auto* us = sl->add_user_sessions();
  us->set_user("alice");
  us->set_uid(1000);
  us->add_judged(v1::GNOME);
  SetInt(sl->mutable_shell_timeout_seconds(), 0, "default:bash", "TMOUT", "", 0);

  // password_policy: pwquality and faillock in the PAM stack, login.defs, two accounts.
  auto* pw_check = a.add_checks();
  pw_check->set_check(collectors::kPasswordPolicy);
  pw_check->set_status(v1::PASS);
  pw_check->set_reason("pam_pwquality minlen 14, 3 classes; faillock deny 5; max age 365 days");
  auto* pw = pw_check->mutable_evidence()->mutable_password_policy();
  SetBool(pw->mutable_quality_module_enforced(), true, "/etc/pam.d/common-password",
          "pam_pwquality.so", "password requisite pam_pwquality.so retry=3", 25);
  SetInt(pw->mutable_min_length(), 14, "/etc/security/pwquality.conf", "minlen", "minlen = 14", 11);
  SetInt(pw->mutable_min_classes(), 3, "/etc/security/pwquality.conf", "minclass", "minclass = 3",
         34);
  SetInt(pw->mutable_default_max_age_days(), 365, "/etc/login.defs", "PASS_MAX_DAYS",
         "PASS_MAX_DAYS\t365", 165);
  SetInt(pw->mutable_max_failed_attempts(), 5, "/etc/pam.d/common-auth", "deny",
         "auth required pam_faillock.so preauth silent deny=5 unlock_time=900", 17);
  SetBool(pw->mutable_nullok(), false, "/etc/pam.d/common-auth", "nullok",
          "auth [success=1 default=ignore] pam_unix.so", 18);
  for (auto [user, uid, locked] : {std::tuple{"root", 0u, true}, {"alice", 1000u, false}}) {
    auto* acc = pw->add_accounts();
    acc->set_user(user);
    acc->set_uid(uid);
    acc->set_locked(locked);
    SetInt(acc->mutable_max_age_days(), 365, "/etc/shadow", std::string(user) + ":max", "365",
           uid == 0 ? 1 : 27);
  }
  SetInt(pw->mutable_default_min_age_days(), 1, "/etc/login.defs", "PASS_MIN_DAYS",
         "PASS_MIN_DAYS\t1", 166);
  SetInt(pw->mutable_default_warn_age_days(), 7, "/etc/login.defs", "PASS_WARN_AGE",
         "PASS_WARN_AGE\t7", 167);
  pw->mutable_encrypt_method()->set_value("YESCRYPT");
  From(pw->mutable_encrypt_method()->mutable_from(), "/etc/login.defs", "ENCRYPT_METHOD",
       "ENCRYPT_METHOD YESCRYPT", 296);
  SetInt(pw->mutable_lockout_unlock_seconds(), 900, "/etc/pam.d/common-auth", "unlock_time",
         "unlock_time=900", 17);

  // usb_storage: blocked by a modprobe install rule, module not loaded, nothing mounted.
  auto* usb_check = a.add_checks();
  usb_check->set_check(collectors::kUsbStorage);
  usb_check->set_status(v1::PASS);
  usb_check->set_reason("usb_storage and uas cannot load (install /bin/false); none loaded");
  auto* usb = usb_check->mutable_evidence()->mutable_usb_storage();
  for (const char* module : {"usb_storage", "uas"}) {
    auto* r = usb->add_rules();
    r->set_kind("install");
    r->set_module(module);
    r->set_command("/bin/false");
    From(r->mutable_from(), "/etc/modprobe.d/vigil-usb.conf", module,
         std::string("install ") + module + " /bin/false", module[0] == 'u' ? 1 : 2);
  }
  SetBool(usb->mutable_module_loaded(), false, "/proc/modules", "usb_storage", "", 0);
  SetBool(usb->mutable_module_builtin(), false, "/lib/modules/6.1.0-18-amd64/modules.builtin",
          "usb_storage", "", 0);
  SetBool(usb->mutable_uas_loaded(), false, "/proc/modules", "uas", "", 0);
  usb->set_kernel_release("6.1.0-18-amd64");
  SetBool(usb->mutable_loadable_modules(), true, "/proc/modules", "", "", 0);
  usb->mutable_kernel_config_usb_storage()->set_value("m");
  From(usb->mutable_kernel_config_usb_storage()->mutable_from(), "/boot/config-6.1.0-18-amd64",
       "CONFIG_USB_STORAGE", "CONFIG_USB_STORAGE=m", 6021);
  usb->mutable_kernel_config_uas()->set_value("m");
  From(usb->mutable_kernel_config_uas()->mutable_from(), "/boot/config-6.1.0-18-amd64",
       "CONFIG_USB_UAS", "CONFIG_USB_UAS=m", 6022);
  SetBool(usb->mutable_usbguard()->mutable_configured(), false,
          "/etc/usbguard/usbguard-daemon.conf", "", "", 0);
  SetBool(usb->mutable_devices_listed(), true, "/sys/bus/usb/devices", "", "", 0);
  return a;
}

std::chrono::nanoseconds OpenLoopOffset(const Options& o, uint32_t index, uint64_t k) {
  // Calls over the whole fleet are batch/rate seconds apart; agent `index` takes every
  // agents-th slot starting at slot `index`.
  double slot = static_cast<double>(index) + static_cast<double>(k) * o.agents;
  return std::chrono::nanoseconds(static_cast<int64_t>(slot * o.batch / o.rate * 1e9));
}

int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

void RunStats::Merge(RunStats&& o) {
  reports += o.reports;
  attestations_sent += o.attestations_sent;
  acked_ok += o.acked_ok;
  duplicates += o.duplicates;
  for (auto [code, n] : o.rejected_by_code) rejected_by_code[code] += n;
  for (auto [code, n] : o.rpc_errors) rpc_errors[code] += n;
  rpc_failed_attestations += o.rpc_failed_attestations;
  malformed_responses += o.malformed_responses;
  behind_schedule += o.behind_schedule;
  for (auto& [k, m] : o.first_message) first_message.emplace(k, std::move(m));
  latency_us.insert(latency_us.end(), o.latency_us.begin(), o.latency_us.end());
  sign_cpu_ns += o.sign_cpu_ns;
  signed_count += o.signed_count;
  sign_failures += o.sign_failures;
}

std::string CodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return std::to_string(code);
}

namespace {

std::string PerSecond(uint64_t n, double s) { return Fixed(s > 0 ? n / s : 0, 0); }

double CpuPercent(const Summary& s) {
  return s.run_s > 0 ? 100.0 * (s.cpu_user_s + s.cpu_system_s) / s.run_s : 0;
}

}  // namespace

std::string FormatText(const Options& o, const Summary& s, const RunStats& r) {
  std::ostringstream out;
  out << "vigil-loadgen: " << o.agents << " agents against " << s.server << " over " << s.transport
      << ", " << s.channels << " connection" << (s.channels == 1 ? "" : "s") << ", " << o.threads
      << " client thread" << (o.threads == 1 ? "" : "s") << ", " << Mode(o) << ", batch " << o.batch
      << ", " << Fixed(o.duration_s, 1) << " s\n";
  out << "attestation: " << s.attestation_bytes << " bytes signed (3 checks with evidence)\n";
  out << "enrollment: " << s.enrolled << " agents in " << Fixed(s.enroll_s, 2) << " s ("
      << PerSecond(s.enrolled, s.enroll_s) << "/s; per call p50 "
      << Fixed(Ms(Percentile(s.enroll_latency_us, 50)), 1) << " ms, p99 "
      << Fixed(Ms(Percentile(s.enroll_latency_us, 99)), 1) << " ms), " << s.client_certificates
      << " client certificates issued\n";
  out << "connect: " << s.channels << " connection" << (s.channels == 1 ? "" : "s") << " ready in "
      << Fixed(s.connect_s, 2) << " s\n";
  out << "run: " << Fixed(s.run_s, 2) << " s from the first call to the last answer\n";
  uint64_t rejected = 0;
  for (auto [c, n] : r.rejected_by_code) rejected += n;
  uint64_t rpc_failed = 0;
  for (auto [c, n] : r.rpc_errors) rpc_failed += n;
  out << "  Report calls            " << r.reports << " (" << PerSecond(r.reports, s.run_s)
      << "/s)\n";
  out << "  attestations sent       " << r.attestations_sent << "\n";
  out << "  acknowledged OK (0)     " << r.acked_ok << " (" << PerSecond(r.acked_ok, s.run_s)
      << "/s: the throughput)\n";
  out << "  duplicates (6)          " << r.duplicates << "\n";
  out << "  rejected                " << rejected << "\n";
  auto detail = [&](const std::string& key, int code, uint64_t n) {
    out << "    " << code << " " << CodeName(code) << ": " << n;
    if (auto it = r.first_message.find(key); it != r.first_message.end() && !it->second.empty()) {
      out << " (e.g. \"" << it->second << "\")";
    }
    if (std::string h = Hint(key); !h.empty()) out << " -- " << h;
    out << "\n";
  };
  for (auto [c, n] : r.rejected_by_code) detail("ack " + std::to_string(c), c, n);
  out << "  failed Report calls     " << rpc_failed << " (" << r.rpc_failed_attestations
      << " attestations)\n";
  for (auto [c, n] : r.rpc_errors) detail("rpc " + std::to_string(c), c, n);
  if (r.malformed_responses > 0) {
    out << "  malformed responses     " << r.malformed_responses
        << " (ack count differs from the batch)\n";
  }
  if (r.sign_failures > 0) {
    out << "  signing failures        " << r.sign_failures << " (" << r.first_message.at("sign")
        << ")\n";
  }
  if (r.behind_schedule > 0) {
    out << "  behind schedule         " << r.behind_schedule
        << " calls due before the end were never sent: the rate was not sustained\n";
  }
  out << "latency per Report call (ms" << (o.rate > 0 ? ", from the scheduled send time" : "")
      << "): p50 " << Fixed(Ms(Percentile(r.latency_us, 50)), 2) << "  p90 "
      << Fixed(Ms(Percentile(r.latency_us, 90)), 2) << "  p99 "
      << Fixed(Ms(Percentile(r.latency_us, 99)), 2) << "  max "
      << Fixed(Ms(r.latency_us.empty() ? 0 : r.latency_us.back()), 2) << "\n";
  double sign_s = static_cast<double>(r.sign_cpu_ns) / 1e9;
  out << "client signing (inline, included above): "
      << Fixed(r.signed_count ? sign_s * 1e6 / static_cast<double>(r.signed_count) : 0, 1)
      << " us CPU per attestation, " << Fixed(sign_s, 2) << " s CPU in all\n";
  out << "loadgen CPU over the run: user " << Fixed(s.cpu_user_s, 2) << " s + system "
      << Fixed(s.cpu_system_s, 2) << " s = " << Fixed(CpuPercent(s), 0) << "% of one core ("
      << s.cores << " cores here; the server shares them when both run on this machine)\n";
  if (s.server_cpu_s >= 0) {
    out << "server CPU over the run (pid " << o.server_pid << "): " << Fixed(s.server_cpu_s, 2)
        << " s = " << Fixed(s.run_s > 0 ? 100.0 * s.server_cpu_s / s.run_s : 0, 0)
        << "% of one core\n";
  }
  if (s.machine_total_s > 0) {
    out << "machine CPU over the run: " << Fixed(s.machine_busy_s, 2) << " s busy of "
        << Fixed(s.machine_total_s, 2) << " s ("
        << Fixed(100.0 * s.machine_busy_s / s.machine_total_s, 0) << "%)";
    if (s.server_cpu_s >= 0) {
      double others = s.machine_busy_s - s.server_cpu_s - s.cpu_user_s - s.cpu_system_s;
      out << "; other processes about " << Fixed(std::max(0.0, others), 2) << " s";
    }
    out << "\n";
  }
  out << (r.NotOk() == 0 && r.sign_failures == 0 && r.attestations_sent > 0
              ? "result: every attestation acknowledged OK\n"
              : "result: " + std::to_string(r.NotOk()) + " of " +
                    std::to_string(r.attestations_sent) + " attestations NOT acknowledged OK\n");
  return out.str();
}

std::string FormatJson(const Options& o, const Summary& s, const RunStats& r) {
  std::ostringstream out;
  auto codes = [&](const std::map<int, uint64_t>& m) {
    std::string j = "{";
    for (auto [c, n] : m) {
      if (j.size() > 1) j += ", ";
      j += "\"" + CodeName(c) + "\": " + std::to_string(n);
    }
    return j + "}";
  };
  std::string examples = "{";
  for (const auto& [k, m] : r.first_message) {
    if (examples.size() > 1) examples += ", ";
    examples += "\"" + JsonEscape(k) + "\": \"" + JsonEscape(m) + "\"";
  }
  examples += "}";
  out << "{\"server\": \"" << JsonEscape(s.server) << "\", \"transport\": \"" << s.transport
      << "\", \"agents\": " << o.agents << ", \"connections\": " << s.channels
      << ", \"threads\": " << o.threads << ", \"mode\": \"" << (o.rate > 0 ? "open" : "closed")
      << "\", \"rate\": " << o.rate << ", \"batch\": " << o.batch
      << ", \"duration_s\": " << o.duration_s << ", \"attestation_bytes\": " << s.attestation_bytes
      << ",\n \"enroll\": {\"agents\": " << s.enrolled
      << ", \"client_certificates\": " << s.client_certificates
      << ", \"seconds\": " << Fixed(s.enroll_s, 3)
      << ", \"p50_ms\": " << Fixed(Ms(Percentile(s.enroll_latency_us, 50)), 3)
      << ", \"p99_ms\": " << Fixed(Ms(Percentile(s.enroll_latency_us, 99)), 3)
      << "}, \"connect_s\": " << Fixed(s.connect_s, 3) << ",\n \"run_s\": " << Fixed(s.run_s, 3)
      << ", \"reports\": " << r.reports << ", \"attestations_sent\": " << r.attestations_sent
      << ", \"acked_ok\": " << r.acked_ok << ", \"duplicates\": " << r.duplicates
      << ", \"rejected\": " << codes(r.rejected_by_code)
      << ", \"rpc_errors\": " << codes(r.rpc_errors)
      << ", \"rpc_failed_attestations\": " << r.rpc_failed_attestations
      << ", \"malformed_responses\": " << r.malformed_responses
      << ", \"behind_schedule\": " << r.behind_schedule
      << ", \"sign_failures\": " << r.sign_failures << ", \"examples\": " << examples
      << ",\n \"throughput_per_s\": " << Fixed(s.run_s > 0 ? r.acked_ok / s.run_s : 0, 1)
      << ", \"reports_per_s\": " << Fixed(s.run_s > 0 ? r.reports / s.run_s : 0, 1)
      << ", \"latency_ms\": {\"p50\": " << Fixed(Ms(Percentile(r.latency_us, 50)), 3)
      << ", \"p90\": " << Fixed(Ms(Percentile(r.latency_us, 90)), 3)
      << ", \"p99\": " << Fixed(Ms(Percentile(r.latency_us, 99)), 3)
      << ", \"max\": " << Fixed(Ms(r.latency_us.empty() ? 0 : r.latency_us.back()), 3) << "}"
      << ",\n \"sign_us_per_attestation\": "
      << Fixed(r.signed_count
                   ? static_cast<double>(r.sign_cpu_ns) / 1e3 / static_cast<double>(r.signed_count)
                   : 0,
               2)
      << ", \"sign_cpu_s\": " << Fixed(static_cast<double>(r.sign_cpu_ns) / 1e9, 3)
      << ", \"cpu_user_s\": " << Fixed(s.cpu_user_s, 3)
      << ", \"cpu_system_s\": " << Fixed(s.cpu_system_s, 3) << ", \"cores\": " << s.cores;
  if (s.server_cpu_s >= 0) out << ", \"server_cpu_s\": " << Fixed(s.server_cpu_s, 3);
  if (s.machine_total_s > 0) {
    out << ", \"machine_busy_s\": " << Fixed(s.machine_busy_s, 3)
        << ", \"machine_total_s\": " << Fixed(s.machine_total_s, 3);
  }
  bool ok = r.NotOk() == 0 && r.sign_failures == 0 && r.attestations_sent > 0;
  out << ", \"ok\": " << (ok ? "true" : "false") << "}\n";
  return out.str();
}

}  // namespace vigil::loadgen
