#!/usr/bin/env bash
#! The engine benchmark's cases in four instruction-set variants, case by case in turn, so that
#! every variant of a case sees the same machine load; each row also carries the PyTorch
#! figure its own process measured alternately with it (the ratio is the figure to compare).
#!
#!   gemm avx2,   kernels avx2     the code paths before AVX-512 support
#!   gemm avx2,   kernels avx512   --no-default-features
#!   gemm avx512, kernels avx2     default build, MODEL_OPTIMIZER_SIMD=avx2
#!   gemm avx512, kernels avx512   default build (what ships)
#!
#! On a CPU without AVX-512 all four run the same code: their spread is the noise.
#! Usage: tests/benches/isa-variants.sh [CASE ...]   (CASE as small/32/512; default: all 17)
set -euo pipefail
cd "$(dirname "$0")/../.."

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    for dims in tiny small; do
        for batch in 1 32; do
            for context in 180 365 730 2048; do cases+=("$dims/$batch/$context"); done
        done
    done
    cases+=(small/32/512)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Builds the engine benchmark with the given cargo flags and copies it to $work/$1.
build() {
    local name=$1
    shift
    local exe
    exe=$(cargo bench --bench engine --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "engine":
        print(m["executable"])')
    cp "$exe" "$work/$name"
}
echo "building the engine benchmark with and without the avx512-gemm feature" >&2
build with
build without --no-default-features

variants=("without avx2" "without best" "with avx2" "with best")
labels=("gemm avx2, kernels avx2" "gemm avx2, kernels best" "gemm best, kernels avx2" "gemm best, kernels best")
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) threads"
for v in 0 1 2 3; do
    read -r bin simd <<<"${variants[$v]}"
    env_simd=()
    [ "$simd" = avx2 ] && env_simd=(MODEL_OPTIMIZER_SIMD=avx2)
    echo "variant $((v + 1)): ${labels[$v]}: $(env "${env_simd[@]}" ENGINE_BENCH_TORCH=0 ENGINE_BENCH_CASE=none "$work/$bin" | awk 'NR == 1 { sub(/.*, kernels/, "kernels"); print }')"
done
printf '\n%-15s' case
for v in 0 1 2 3; do printf ' %22s' "variant $((v + 1)) ms (vs torch)"; done
printf '\n'
for case in "${cases[@]}"; do
    IFS=/ read -r _ batch context <<<"$case"
    printf '%-15s' "$case"
    for v in 0 1 2 3; do
        read -r bin simd <<<"${variants[$v]}"
        env_simd=()
        [ "$simd" = avx2 ] && env_simd=(MODEL_OPTIMIZER_SIMD=avx2)
        row=$(env "${env_simd[@]}" ENGINE_BENCH_CASE="$case" "$work/$bin" |
            awk -v b="$batch" -v c="$context" '$1 == b && $2 == c { print $3, $5; exit }')
        read -r ms vs <<<"$row"
        printf ' %22s' "$ms ($vs)"
    done
    printf '\n'
done
