#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install dependencies, build with warnings as
# errors, start a PostgreSQL cluster on 127.0.0.1 (scripts/pg.sh), run unit and end-to-end
# tests (CTest, including the store suite on both backends and two replicas), build the Debian
# packages and install, upgrade and purge them in a throwaway overlay; then the same CTest suite
# again under AddressSanitizer + UBSan (clang, build-fuzz/), the server's concurrency tests under
# ThreadSanitizer (clang, build-tsan/), and every libFuzzer target for FUZZ_SECONDS (default 30).
# Prints the elapsed time of each step and of the whole at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
since() { echo "$(( $(date +%s) - $1 )) s"; }
scripts/deps.sh --test
BUILD_DIR=build scripts/build.sh -DVIGIL_WERROR=ON

# PostgreSQL for the store suite and the two-replica test: a throwaway cluster on 127.0.0.1,
# stopped on exit. VIGIL_REQUIRE_POSTGRES makes those tests fail, not skip, without it.
# Under /tmp: the postgres user must be able to reach it (a clone under /root is not).
# The first free port from 55432 (another cluster, or another run's, may hold it).
PG_DIR=$(mktemp -d /tmp/vigil-pg.XXXXXX)
pg_port=${VIGIL_PG_PORT:-55432}
while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do pg_port=$((pg_port + 1)); done
VIGIL_TEST_POSTGRES_URL=$(scripts/pg.sh start "$PG_DIR" "$pg_port")
export VIGIL_TEST_POSTGRES_URL VIGIL_REQUIRE_POSTGRES=1
trap 'scripts/pg.sh stop "$PG_DIR" >/dev/null 2>&1 || true; rm -rf "$PG_DIR"' EXIT
echo "PostgreSQL for tests: $VIGIL_TEST_POSTGRES_URL"

(cd build && ctest --output-on-failure -j2)
echo "build and tests: $(since "$start")"

# The Debian packages (CPack), lintian, and install/upgrade/remove/purge in a throwaway overlay
# of this machine (tests/package/package_test.sh; root for mount and chroot).
echo "=== packages"
t=$(date +%s)
(cd build && cpack -G DEB >/dev/null)
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO tests/package/package_test.sh build
echo "packages: $(since "$t")"

# ASan+UBSan: build-fuzz/ instruments every target (VIGIL_FUZZ); only the fuzzers link libFuzzer,
# so the unit tests and the real server and agent of the end-to-end test run sanitized too.
# Any report fails the run: UBSan is built non-recoverable, LSan is on (third-party leaks only
# are suppressed in tests/sanitizers/lsan.supp).
echo "=== ASan+UBSan: CTest in build-fuzz/"
t=$(date +%s)
cmake -S . -B build-fuzz -G Ninja -DVIGIL_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz
echo "asan+ubsan build: $(since "$t")"
t=$(date +%s)
lsan_supp="$PWD/tests/sanitizers/lsan.supp"
(cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$lsan_supp":print_suppressions=0 \
  ctest --output-on-failure -j2)
echo "asan+ubsan tests: $(since "$t")"

# TSan: the server's concurrent paths (server/concurrency_test.cc) without gRPC, whose Debian
# build is not instrumented. Only server_test is built. setarch -R (no ASLR): clang-14's TSan
# cannot place its shadow memory on kernels that randomise mmap with 32 bits (vm.mmap_rnd_bits).
echo "=== TSan: server concurrency tests in build-tsan/"
t=$(date +%s)
cmake -S . -B build-tsan -G Ninja -DVIGIL_TSAN=ON -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-tsan --target server_test
tsan_test() {
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 setarch "$(uname -m)" -R \
    build-tsan/server/server_test --test-case='*concurrent*' "$@"
}
[[ "$(tsan_test --count)" =~ filters:\ [1-9] ]] || { echo "TSan: no 'concurrent' test cases"; exit 1; }
tsan_test --minimal
echo "tsan: $(since "$t")"

echo "=== fuzz (${FUZZ_SECONDS:-30} s per target)"
t=$(date +%s)
for f in build-fuzz/tests/fuzz/*_fuzz; do
  name=$(basename "$f")
  corpus="build-fuzz/corpus/$name"
  mkdir -p "$corpus"
  seeds="tests/fuzz/corpus/$name"
  [ -d "$seeds" ] || seeds=
  # A fixed seed makes the run reproducible: a slower machine explores a prefix of the same inputs.
  "$f" -seed="${FUZZ_SEED:-1}" -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=0 "$corpus" $seeds \
    >"build-fuzz/$name.log" 2>&1 || { tail -40 "build-fuzz/$name.log"; echo "FUZZ FAILURE: $name"; exit 1; }
  echo "$name: $(grep -Eo 'Done [0-9]+ runs' "build-fuzz/$name.log" || echo ok)"
done
echo "fuzz: $(since "$t")"
echo "all tests passed in $(( $(date +%s) - start )) s"
