"""Summarises bench/out/results.jsonl (written by bench/run.sh) as the markdown table of bench/RESULTS.md:
medians over rounds, roofline fractions against the bandwidth measured next to each run, and ratios to
llama.cpp's figures in ../shared/baselines.md."""
import json
import re
import statistics
import sys


def llama_baselines(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"[\w.\-]+", cells[0]) and re.match(r"[\d.]+ ±", cells[4] or ""):
            rows[(cells[0], cells[1])] = (float(cells[4].split()[0]), float(cells[5].split()[0]))
    return rows


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    runs, pos, dec = [], 0, json.JSONDecoder()
    while pos < len(text):  # one JSON object per run (possibly spread over several lines)
        if text[pos].isspace():
            pos += 1
            continue
        obj, pos = dec.raw_decode(text, pos)
        runs.append(obj)
    base = llama_baselines(sys.argv[2]) if len(sys.argv) > 2 else {}
    keys = []
    for r in runs:
        k = (r["shape"], r["type"])
        if k not in keys:
            keys.append(k)
    med = statistics.median
    print("| shape | type | bytes/token | pp512 t/s | × llama.cpp | tg128 t/s (mmap) | × llama.cpp | tg/roofline "
          "| tg128 t/s (read) | tg/roofline | bandwidth GB/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        rs = [r for r in runs if (r["shape"], r["type"]) == k]
        mm = [r for r in rs if r["mode"] == "mmap"]
        rd = [r for r in rs if r["mode"] == "read"]
        bpt = rs[0]["bench"]["bytes_per_token"]
        pp = med(r["bench"]["pp"]["median"] for r in mm)
        tg_m = med(r["bench"]["tg"]["median"] for r in mm)
        tg_r = med(r["bench"]["tg"]["median"] for r in rd)
        # Roofline fraction per run, against the bandwidth measured just before it.
        frac_m = med(r["bench"]["tg"]["median"] * bpt / (r["bw_gbps"] * 1e9) for r in mm)
        frac_r = med(r["bench"]["tg"]["median"] * bpt / (r["bw_gbps"] * 1e9) for r in rd)
        bw = med(r["bw_gbps"] for r in rs)
        lp, lt = base.get(k, (None, None))
        ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"
        print(f"| {k[0]} | {k[1]} | {bpt:,} | {pp:.1f} | {ratio(pp, lp)} | {tg_m:.1f} | {ratio(tg_m, lt)} "
              f"| {frac_m:.0%} | {tg_r:.1f} | {frac_r:.0%} | {bw:.1f} |")


if __name__ == "__main__":
    main()
