#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install dependencies, build with warnings as
# errors, run unit and end-to-end tests (CTest), then build the libFuzzer targets with clang and
# run each for FUZZ_SECONDS (default 20). Prints the elapsed time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/deps.sh --test
BUILD_DIR=build scripts/build.sh -DVIGIL_WERROR=ON
(cd build && ctest --output-on-failure -j2)

echo "=== fuzz (${FUZZ_SECONDS:-20} s per target)"
cmake -S . -B build-fuzz -G Ninja -DVIGIL_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzzers
for f in build-fuzz/tests/fuzz/*_fuzz; do
  name=$(basename "$f")
  corpus="build-fuzz/corpus/$name"
  mkdir -p "$corpus"
  seeds="tests/fuzz/corpus/$name"
  [ -d "$seeds" ] || seeds=
  # A fixed seed makes the run reproducible: a slower machine explores a prefix of the same inputs.
  "$f" -seed="${FUZZ_SEED:-1}" -max_total_time="${FUZZ_SECONDS:-20}" -print_final_stats=0 "$corpus" $seeds \
    >"build-fuzz/$name.log" 2>&1 || { tail -40 "build-fuzz/$name.log"; echo "FUZZ FAILURE: $name"; exit 1; }
  echo "$name: $(grep -Eo 'Done [0-9]+ runs' "build-fuzz/$name.log" || echo ok)"
done
echo "all tests passed in $(( $(date +%s) - start )) s"
