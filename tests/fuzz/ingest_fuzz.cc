// The server's whole ingest path on hostile input, with a real (in-memory) SQLite store: raw
// Report, Enroll and RotateKey requests from the fuzzer, and fuzzer-made attestations signed by
// an enrolled device's key, so evaluation and storage see them too. The first byte picks the
// path. Nothing may crash, and the server must keep answering.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/sqlite_store.h"

namespace {

using namespace vigil;
using namespace vigil::server;

struct Server {
  FakeClock clock{1'800'000'000'000};
  Counters counters;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<signing::DeviceKey> key;
  std::string device_id;
  std::string secret;
  pki::KeyAndCert ca;
  uint64_t sequence = 0;

  Server() {
    spdlog::set_level(spdlog::level::off);
    store = std::move(OpenSqliteStore(":memory:")).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    secret = *credentials->Create(CredentialKind::kEnrollSecret, "fuzz", 0, 0, "fuzz");
    ca = *pki::CreateCa("fuzz CA", clock.NowMillis() / 1000, 10);
    AggregatorOptions opts;
    opts.ca = &ca;
    opts.reports_per_minute = 0;
    opts.failed_auth_per_minute = 0;
    v1::Policy policy;
    policy.set_checkin_window_seconds(3600);
    aggregator = std::make_unique<Aggregator>(*store, clock, *credentials, counters, policy, opts);
    key = std::make_unique<signing::DeviceKey>(*signing::DeviceKey::Generate());
    v1::EnrollRequest req;
    req.set_enroll_secret(secret);
    req.set_public_key(key->PublicKey());
    device_id = aggregator->Enroll(req)->device_id();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server* s = new Server();
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  CallInfo call;
  call.peer = "ipv4:127.0.0.1:1";
  switch (data[0] % 4) {
    case 0: {
      v1::ReportRequest req;
      if (req.ParseFromString(bytes)) (void)s->aggregator->Report(req, call);
      break;
    }
    case 1: {
      // A device's own signed attestation with fuzzer-chosen content.
      v1::Attestation att;
      if (!att.ParseFromString(bytes)) break;
      att.set_device_id(s->device_id);
      att.set_sequence(++s->sequence);
      att.mutable_issued_at()->set_seconds(s->clock.NowMillis() / 1000);
      auto signed_att = signing::SignAttestation(att, *s->key);
      if (!signed_att.ok()) break;
      v1::ReportRequest req;
      *req.add_attestations() = *signed_att;
      (void)s->aggregator->Report(req, call);
      break;
    }
    case 2: {
      v1::EnrollRequest req;
      if (!req.ParseFromString(bytes)) break;
      if (data[0] & 4) req.set_enroll_secret(s->secret);  // reach the CSR and storage paths
      (void)s->aggregator->Enroll(req, call);
      break;
    }
    case 3: {
      v1::RotateKeyRequest req;
      if (req.ParseFromString(bytes)) (void)s->aggregator->RotateKey(req, call);
      break;
    }
  }
  return 0;
}
