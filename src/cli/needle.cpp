#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lab/needle.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

void add_needle(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "needle", "Needle in a haystack: does a fact at several depths of a long prompt reach the answer, with the "
                  "full KV cache and after KV eviction (--kv-evict)?");
    struct Opts {
        std::string model, haystack, needle, question, answer, kv_evict;
        int haystack_tokens = 0;
        std::vector<double> depths = {0.1, 0.3, 0.5, 0.7, 0.9};
        int ctx = 0;
        int threads = 0;
        bool json = false;
        KvOptions kv;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_option("--haystack", o->haystack, "Text file of filler text")->required();
    cmd->add_option("--haystack-tokens", o->haystack_tokens,
                    "Tokens of the filler text to use (default: what the context leaves)");
    cmd->add_option("--needle", o->needle, "The fact placed in the haystack")->required();
    cmd->add_option("--question", o->question, "The end of the prompt, which only the needle answers")->required();
    cmd->add_option("--answer", o->answer, "The answer's text, scored token by token")->required();
    cmd->add_option("--depths", o->depths, "Fractions of the haystack before the needle (default 0.1 0.3 0.5 0.7 0.9)")
        ->delimiter(',');
    cmd->add_option("--kv-evict", o->kv_evict, "The eviction to measure: snapkv:BUDGET or recent:BUDGET")->required();
    cmd->add_option("-c,--ctx-size", o->ctx, "Context size (default: the model's, at most 4096)");
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--json", o->json, "Print JSON");
    add_kv_options(cmd, o->kv);
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        auto model = Model::load(store::resolve_model(o->model), false);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        ContextParams cp;
        cp.n_threads = o->threads;
        o->kv.apply(cp);
        cp.n_ctx = context_size(*model, o->ctx, cmd->count("--ctx-size") > 0);
        const KvEvictParams evict = parse_kv_evict(o->kv_evict);
        check_kv_evict(evict, cp.n_ctx);

        NeedleSpec spec;
        if (vocab.add_bos()) spec.prefix.push_back(vocab.bos());
        spec.needle = vocab.encode(o->needle, false, false);
        spec.question = vocab.encode(o->question, false, false);
        spec.answer = vocab.encode(o->answer, false, false);
        spec.depths = o->depths;
        const std::vector<int32_t> hay = vocab.encode(read_text(o->haystack, "haystack"), false, false);
        const int64_t room = cp.n_ctx - static_cast<int64_t>(spec.prefix.size() + spec.needle.size() +
                                                             spec.question.size() + spec.answer.size());
        const int64_t want = o->haystack_tokens > 0 ? o->haystack_tokens : room;
        if (want > room)
            fail("--haystack-tokens {}: with the needle, question and answer that exceeds the context size {}", want,
                 cp.n_ctx);
        if (static_cast<int64_t>(hay.size()) < want)
            fail("{}: the haystack has {} tokens, {} are wanted", o->haystack, hay.size(), want);
        spec.haystack.assign(hay.begin(), hay.begin() + want);
        // The needle goes between sentences: after a token that ends one.
        for (size_t i = 0; i <= spec.haystack.size(); ++i) {
            if (i == 0) {
                spec.boundaries.push_back(0);
                continue;
            }
            const std::string piece = vocab.token_to_piece(spec.haystack[i - 1]);
            if (piece.find_first_of(".!?\n") != std::string::npos) spec.boundaries.push_back(i);
        }
        Progress progress("needle", static_cast<int64_t>(spec.depths.size()) * 2 + 1);
        const NeedleResult r = needle_check(*model, cp, spec, evict, [&](int done, int) { progress.update(done); });
        progress.finish();

        const std::string method = fmt::format("{}:{}", evict.method == KvEvictMethod::SnapKv ? "snapkv" : "recent",
                                               evict.budget);
        if (o->json) {
            nlohmann::json j;
            j["kv_evict"] = method;
            j["kv_type"] = o->kv.type;
            j["n_ctx"] = cp.n_ctx;
            j["haystack_tokens"] = spec.haystack.size();
            j["hits_full"] = r.hits_full;
            j["hits_evicted"] = r.hits_evicted;
            j["gain_kept"] = std::isnan(r.gain_kept) ? nlohmann::json() : nlohmann::json(r.gain_kept);
            for (const NeedleDepth& d : r.depths)
                j["depths"].push_back({{"depth", d.depth},
                                       {"needle_pos", d.needle_pos},
                                       {"prompt_tokens", d.prompt_tokens},
                                       {"kept_cells", d.kept_cells},
                                       {"logp_full", d.logp_full},
                                       {"logp_evicted", d.logp_evicted},
                                       {"logp_without", d.logp_without},
                                       {"hit_full", d.hit_full},
                                       {"hit_evicted", d.hit_evicted}});
            fmt::print("{}\n", j.dump());
            return;
        }
        fmt::print("needle in {} tokens of haystack, KV eviction {} ({} cells per head kept)\n", spec.haystack.size(),
                   method, r.depths.empty() ? 0 : r.depths.front().kept_cells);
        fmt::print("| depth | needle at | log p(answer) full | evicted | without needle | greedy full | evicted |\n");
        fmt::print("|---|---|---|---|---|---|---|\n");
        for (const NeedleDepth& d : r.depths)
            fmt::print("| {:.2f} | {} | {:.3f} | {:.3f} | {:.3f} | {} | {} |\n", d.depth, d.needle_pos, d.logp_full,
                       d.logp_evicted, d.logp_without, d.hit_full ? "hit" : "miss", d.hit_evicted ? "hit" : "miss");
        fmt::print("retrieved: {:.0f} % full, {:.0f} % evicted; share of the needle's log-probability gain kept: {}\n",
                   100 * r.hits_full, 100 * r.hits_evicted,
                   std::isnan(r.gain_kept) ? std::string("n/a (the needle does not help)")
                                           : fmt::format("{:.2f}", r.gain_kept));
    });
}

}  // namespace hearth::cli
