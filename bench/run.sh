#!/usr/bin/env bash
# Regenerates the speed table of bench/RESULTS.md: synthesises the SmolLM2-135M, SmolLM2-360M and
# Llama-3.2-1B shapes (random weights, real tokenizers from ../shared), quantizes each with `hearth quantize`,
# and runs `hearth bench` (pp512 / tg128, median of 5, 2 threads) on each, ROUNDS times over (default 3),
# measuring the memory bandwidth (../shared/tools/membw.c) right before each shape so that every tg figure has
# a roofline taken at the same time (this is a shared VM: bandwidth varies by 2x between minutes).
# Each model runs in both load modes: --mmap (llama.cpp's default, the like-for-like comparison with
# ../shared/baselines.md) and the default read-into-memory mode.
# Usage: bench/run.sh [SHAPES...]      (env: ROUNDS=3, TYPES="Q8_0 Q4_0 Q4_K_M"; any `hearth synth` shape)
# Prints the markdown table; raw figures go to bench/out/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${HEARTH_SHARED:-$(cd .. && pwd)/shared}"
OUT=bench/out
ROUNDS="${ROUNDS:-3}"
mkdir -p "$OUT"
HEARTH=build/hearth
[ -x "$HEARTH" ] || { echo "build first: scripts/setup" >&2; exit 1; }
[ -x "$OUT/membw" ] || gcc -O3 -march=native -fopenmp "$SHARED/tools/membw.c" -o "$OUT/membw"

shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(smollm2-135m smollm2-360m llama3.2-1b)
types=(${TYPES:-Q8_0 Q4_0 Q4_K_M})

vocab_for() {
  case "$1" in
    smollm2-*) echo "$SHARED/tokenizers/smollm2/tokenizer.json" ;;
    llama3.2-1b) echo "$SHARED/tokenizers/llama3.2-bpe/encoder.json" ;;
    qwen3-*|qwen2.5-*) echo "$SHARED/tokenizers/qwen3-npm/tokenizer.json" ;;
    phi3-*) echo "$SHARED/tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf" ;;
    *) echo "" ;;  # placeholder vocab of the shape's size (gemma3, granite, qwen3moe-a400m)
  esac
}

for shape in "${shapes[@]}"; do
  f16="$OUT/$shape.F16.gguf"
  vocab=$(vocab_for "$shape")
  [ -f "$f16" ] || "$HEARTH" synth --shape "$shape" ${vocab:+--vocab "$vocab"} -o "$f16" >/dev/null
  for type in "${types[@]}"; do
    m="$OUT/$shape.$type.gguf"
    [ -f "$m" ] || "$HEARTH" quantize "$f16" "$m" "$type" >/dev/null
  done
done

results="$OUT/results.jsonl"
: > "$results"
for round in $(seq "$ROUNDS"); do
  for shape in "${shapes[@]}"; do
    # 2-thread, 4-stream read: what a mat-vec reading several rows at once can get.
    bw=$("$OUT/membw" | awk '/^threads 2/ { for (i = 1; i <= NF; i++) if ($i == "read-4-streams") print $(i + 1) }')
    for type in "${types[@]}"; do
      m="$OUT/$shape.$type.gguf"
      for mode in mmap read; do
        flag=(); [ "$mode" = mmap ] && flag=(--mmap)
        j=$("$HEARTH" bench -m "$m" -t 2 -p 512 -n 128 -r 5 "${flag[@]}" --json | tr -d '\n')
        echo "{\"round\": $round, \"shape\": \"$shape\", \"type\": \"$type\", \"mode\": \"$mode\", \"bw_gbps\": $bw, \"file_bytes\": $(stat -c %s "$m"), \"bench\": $j}" >> "$results"
        echo "round $round $shape $type $mode done (bandwidth $bw GB/s)" >&2
      done
    done
  done
done

echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F); $ROUNDS rounds"
echo
/usr/bin/python3 bench/table.py "$results" "$SHARED/baselines.md"
