// `hearth bench`: llama-bench's pp / tg test (see ../shared/baselines.md for the method).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/forward.h"
#include "store/model_store.h"
#include "tensor/kernels.h"

namespace hearth::cli {
namespace {

struct Stats {
    double median = 0, mean = 0, sd = 0;
    std::vector<double> runs;
};

Stats stats(std::vector<double> v) {
    Stats s;
    s.runs = v;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= static_cast<double>(v.size());
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

}  // namespace

void add_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "Measure prefill (pp) and decode (tg) speed, as llama-bench does");
    struct Opts {
        std::string model;
        int threads = 0;
        int n_prompt = 512;
        int n_gen = 128;
        int reps = 5;
        int batch = 1;  // sequences decoding together in the tg test
        int depth = 0;  // cells already in each sequence's context when the tg test starts
        bool json = false;
        bool mmap = false;
        KvOptions kv;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens for the prefill test (0 = skip)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-n,--n-gen", o->n_gen, "Tokens for the decode test (0 = skip)")->check(CLI::NonNegativeNumber);
    cmd->add_option("-r,--repetitions", o->reps, "Timed repetitions (the median is reported)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("-b,--batch", o->batch,
                    "Sequences decoding together in the tg test: each step is one token of each (a server's "
                    "continuous batch); t/s counts all of them (default 1)")
        ->check(CLI::Range(1, 256));
    cmd->add_option("-d,--depth", o->depth, "Context each sequence already holds when the tg test starts (default 0)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it into memory");
    cmd->add_flag("--json", o->json, "Print JSON");
    add_kv_options(cmd, o->kv);
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const HParams& hp = model->hp;
        ContextParams cp;
        cp.n_threads = o->threads;
        o->kv.apply(cp);
        cp.n_ctx = std::max({1024, o->n_prompt, o->batch * (o->depth + o->n_gen + 16)});
        Context ctx(*model, cp);
        const bool add_bos = model->file.get_bool_or("tokenizer.ggml.add_bos_token", false);
        const int32_t bos = static_cast<int32_t>(model->file.get_u32_or("tokenizer.ggml.bos_token_id", 0));
        std::mt19937 rng(42);
        std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(hp.n_vocab - 1));
        using clock = std::chrono::steady_clock;

        auto run_pp = [&]() {
            ctx.kv().clear();
            Batch b;
            for (int i = 0; i < o->n_prompt; ++i)
                b.add(i == 0 && add_bos ? bos : pick(rng), i, 0, i + 1 == o->n_prompt);
            const auto t0 = clock::now();
            ctx.decode(b);
            return std::chrono::duration<double>(clock::now() - t0).count();
        };
        auto run_tg = [&](int n) {
            ctx.kv().clear();
            Batch b;
            if (o->depth > 0) {  // the sequences' existing context, not timed
                for (int seq = 0; seq < o->batch; ++seq)
                    for (int i = 0; i < o->depth; ++i) b.add(i == 0 && add_bos ? bos : pick(rng), i, seq, false);
                ctx.decode(b);
                // A compressed cache quantizes blocks as later positions follow them, when a pass starts: do
                // it for the context now, untimed, so the test times decoding's steady state (the prompt's
                // quantization belongs to its prefill).
                for (int seq = 0; seq < o->batch; ++seq) ctx.kv().age(seq, o->depth);
            }
            const auto t0 = clock::now();
            for (int i = 0; i < n; ++i) {
                b.clear();
                const int pos = o->depth + i;
                for (int seq = 0; seq < o->batch; ++seq) b.add(pos == 0 && add_bos ? bos : pick(rng), pos, seq, true);
                ctx.decode(b);
            }
            return std::chrono::duration<double>(clock::now() - t0).count();
        };
        // Warm-up, not timed.
        if (o->n_prompt > 0) run_pp();
        if (o->n_gen > 0) run_tg(1);
        std::vector<double> pp, tg;
        for (int r = 0; r < o->reps && o->n_prompt > 0; ++r) pp.push_back(o->n_prompt / run_pp());
        for (int r = 0; r < o->reps && o->n_gen > 0; ++r)
            tg.push_back(static_cast<double>(o->n_gen) * o->batch / run_tg(o->n_gen));
        const Stats sp = stats(pp), sg = stats(tg);
        const double bpt = static_cast<double>(model->bytes_per_token());
        const double gbps = sg.median / o->batch * bpt / 1e9;  // one weight read per step serves the batch
        if (o->json) {
            nlohmann::json j;
            j["model"] = o->model;
            j["threads"] = ctx.n_threads();
            j["isa"] = kernels::active().name;
            j["kv_type"] = o->kv.type;
            j["kv_bytes"] = ctx.kv().bytes();
            j["bytes_per_token"] = model->bytes_per_token();
            if (!pp.empty())
                j["pp"] = {{"n", o->n_prompt}, {"median", sp.median}, {"mean", sp.mean}, {"sd", sp.sd}, {"runs", sp.runs}};
            if (!tg.empty())
                j["tg"] = {{"n", o->n_gen}, {"batch", o->batch}, {"depth", o->depth}, {"median", sg.median},
                           {"mean", sg.mean}, {"sd", sg.sd},         {"runs", sg.runs},   {"weight_gb_per_s", gbps}};
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("model {} | {} threads | kernels {} | {:.1f} MiB read per token | KV {} ({:.1f} MiB)\n", o->model,
                   ctx.n_threads(), kernels::active().name, bpt / 1048576.0, o->kv.type, ctx.kv().bytes() / 1048576.0);
        fmt::print("| test   | t/s (median) | mean ± sd        |\n|--------|-------------:|------------------|\n");
        if (!pp.empty()) fmt::print("| pp{:<4} | {:12.2f} | {:7.2f} ± {:6.2f} |\n", o->n_prompt, sp.median, sp.mean, sp.sd);
        if (!tg.empty()) {
            const std::string name = fmt::format("tg{}", o->n_gen) + (o->batch > 1 ? fmt::format(" b{}", o->batch) : "") +
                                     (o->depth > 0 ? fmt::format(" d{}", o->depth) : "");
            fmt::print("| {:<6} | {:12.2f} | {:7.2f} ± {:6.2f} |\n", name, sg.median, sg.mean, sg.sd);
        }
        if (!tg.empty()) fmt::print("decode streams {:.1f} GB/s of weights\n", gbps);
    });
}

}  // namespace hearth::cli
