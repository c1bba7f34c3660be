#!/usr/bin/env bash
# Regenerates the speed table of bench/RESULTS.md: synthesises the SmolLM2-135M, SmolLM2-360M and
# Llama-3.2-1B shapes (random weights, real tokenizers from ../shared), quantizes each with `hearth quantize`,
# runs `hearth bench` (pp512 / tg128, median of 5, 2 threads) on each, and prints a markdown table with the
# fraction of the memory-bandwidth roofline (bytes read per token / bandwidth).
# Usage: bench/run.sh [BANDWIDTH_GBPS (default: measure with ../shared/tools/membw.c)] [SHAPES...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${HEARTH_SHARED:-$(cd .. && pwd)/shared}"
OUT=bench/out
mkdir -p "$OUT"
HEARTH=build/hearth
[ -x "$HEARTH" ] || { echo "build first: scripts/setup" >&2; exit 1; }

bw="${1:-}"
shift || true
if [ -z "$bw" ]; then
  gcc -O3 -march=native -fopenmp "$SHARED/tools/membw.c" -o "$OUT/membw"
  # 2-thread, 4-stream read: what a mat-vec reading several rows at once can get.
  bw=$("$OUT/membw" | awk '/^threads 2/ { for (i = 1; i <= NF; i++) if ($i == "read-4-streams") print $(i + 1) }')
fi
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(smollm2-135m smollm2-360m llama3.2-1b)
types=(Q8_0 Q4_0 Q4_K_M)

vocab_for() {
  case "$1" in
    smollm2-*) echo "$SHARED/tokenizers/smollm2/tokenizer.json" ;;
    llama3.2-1b) echo "$SHARED/tokenizers/llama3.2-bpe/encoder.json" ;;
  esac
}

echo "bandwidth roofline: $bw GB/s; $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
echo
echo "| shape | type | file bytes | bytes/token | pp512 t/s | tg128 t/s | roofline tg t/s | tg/roofline |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for shape in "${shapes[@]}"; do
  f16="$OUT/$shape.F16.gguf"
  [ -f "$f16" ] || "$HEARTH" synth --shape "$shape" --vocab "$(vocab_for "$shape")" -o "$f16" >/dev/null
  for type in "${types[@]}"; do
    m="$OUT/$shape.$type.gguf"
    [ -f "$m" ] || "$HEARTH" quantize "$f16" "$m" "$type" >/dev/null
    j=$("$HEARTH" bench -m "$m" -t 2 -p 512 -n 128 -r 5 --json)
    /usr/bin/python3 - "$shape" "$type" "$m" "$bw" "$j" <<'PY'
import json, os, sys
shape, typ, path, bw, j = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), json.loads(sys.argv[5])
bpt = j["bytes_per_token"]
roof = bw * 1e9 / bpt
tg = j["tg"]["median"]
print(f"| {shape} | {typ} | {os.path.getsize(path):,} | {bpt:,} | {j['pp']['median']:.1f} | {tg:.1f} | {roof:.0f} | {tg / roof:.0%} |")
PY
  done
done
