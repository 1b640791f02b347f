# shellcheck shell=bash
# Sourced by scripts/run and scripts/test: where the repository and the build folder are, and how
# both configure and build, so the two never disagree on flags and rebuild each other's objects.
#
# STRATA_BUILD_DIR   the build folder (default: build, beside CMakeLists.txt)
# STRATA_BUILD_TYPE  CMAKE_BUILD_TYPE (default: RelWithDebInfo: optimised, and gdb still works)

# shellcheck disable=SC2034 # repo and build are used by the scripts that source this file
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${STRATA_BUILD_DIR:-$repo/build}
[[ $build = /* ]] || build=$repo/$build

# configure_and_build [cmake -D options...] -- [ninja targets...]
configure_and_build() {
  local cmake_options=() targets=()
  while (($#)) && [[ $1 != -- ]]; do cmake_options+=("$1"); shift; done
  (($#)) && shift
  targets=("$@")
  cmake -S "$repo" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE="${STRATA_BUILD_TYPE:-RelWithDebInfo}" "${cmake_options[@]}"
  cmake --build "$build" ${targets[@]:+--target "${targets[@]}"}
}
