#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint.h"
#include "grammar/matcher.h"
#include "model/draft.h"
#include "model/generate.h"
#include "model/kv_evict.h"
#include "model/forward.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

void add_run(CLI::App& app) {
    auto* cmd = app.add_subcommand("run", "Generate a continuation of a prompt");
    struct Opts {
        std::string model, prompt;
        int n_predict = 128;
        int threads = 0;
        int ctx = 0;
        SamplerParams sp;
        bool json = false;
        bool mmap = false;
        bool seed_given = false;
        ConstraintOptions constraint;
        KvOptions kv;
        int lookup = 0;
        std::string draft_model;
        int draft_max = 8;
        std::string kv_evict;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
    cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->check(CLI::NonNegativeNumber);
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_option("-c,--ctx-size", o->ctx, "Context size in tokens (default: the model's, at most 4096)");
    cmd->add_option("--temp", o->sp.temperature, "Temperature (0 = greedy)");
    cmd->add_option("--top-k", o->sp.top_k, "Top-k (0 = off)");
    cmd->add_option("--top-p", o->sp.top_p, "Top-p (1 = off)");
    cmd->add_option("--min-p", o->sp.min_p, "Min-p (0 = off)");
    cmd->add_option("--repeat-penalty", o->sp.repeat_penalty, "Repetition penalty (1 = off)");
    cmd->add_option("--frequency-penalty", o->sp.frequency_penalty, "Frequency penalty (0 = off)");
    cmd->add_option("--presence-penalty", o->sp.presence_penalty, "Presence penalty (0 = off)");
    cmd->add_option("--repeat-last-n", o->sp.penalty_last_n, "Tokens the penalties look back over");
    cmd->add_option("--seed", o->sp.seed, "Random seed (same seed and settings, same output)");
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it into memory");
    cmd->add_flag("--json", o->json,
                  "Print {prompt_tokens, tokens, text, grammar_complete, timings (prompt and decode seconds and tokens/s, "
                  "model loading excluded), speculative, kv_evict} as JSON instead of streaming");
    add_constraint_options(cmd, o->constraint);
    add_kv_options(cmd, o->kv);
    cmd->add_option("--lookup", o->lookup,
                    "Speculative decoding by prompt lookup: verify up to N tokens copied from where the text's last "
                    "words occurred before, in one forward pass (the same output, up to floating-point rounding; 0 = off)")
        ->check(CLI::Range(0, 64));
    auto* draft_opt = cmd->add_option("--draft", o->draft_model,
                                      "Speculative decoding with a draft model (GGUF file or store name) of the same "
                                      "vocabulary: it proposes --draft-max tokens greedily, the model verifies them in "
                                      "one forward pass (the same output, up to floating-point rounding)");
    cmd->add_option("--draft-max", o->draft_max, "Tokens the draft model proposes per pass (default 8)")
        ->check(CLI::Range(1, 64));
    draft_opt->excludes(cmd->get_option("--lookup"));
    cmd->add_option("--kv-evict", o->kv_evict,
                    "KV eviction after the prompt: snapkv:BUDGET keeps, per KV head, the BUDGET cells the prompt's last "
                    "32 tokens attend to most (those 32 included); recent:BUDGET keeps the first 4 and the latest ones. "
                    "Generated tokens are always kept. Off by default");
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        // The constraint is compiled before the context is made: a bad grammar fails fast.
        std::optional<grammar::GrammarMatcher> matcher;
        if (auto g = constraint_grammar(o->constraint))
            matcher.emplace(grammar::compile(*g, std::make_shared<const grammar::TokenTable>(
                                                     grammar::TokenTable::from_vocab(vocab))));
        Sampler sampler(o->sp);
        ContextParams cp;
        cp.n_threads = o->threads;
        o->kv.apply(cp);
        cp.n_ctx = context_size(*model, o->ctx, cmd->count("--ctx-size") > 0);
        std::optional<KvEvictParams> evict;
        if (!o->kv_evict.empty()) {
            evict = parse_kv_evict(o->kv_evict);
            check_kv_evict(*evict, cp.n_ctx);
        }
        Context ctx(*model, cp);
        // The draft model: same vocabulary (checked), its own cache of the context's size.
        std::unique_ptr<Model> draft_model;
        std::unique_ptr<DraftModel> drafter;
        if (!o->draft_model.empty()) {
            draft_model = Model::load(store::resolve_model(o->draft_model), o->mmap);
            check_draft_vocab(vocab, tok::Vocab::from_gguf(draft_model->file));
            ContextParams dp;
            dp.n_threads = o->threads;
            dp.n_ctx = cp.n_ctx;
            drafter = std::make_unique<DraftModel>(*draft_model, dp);
        }

        std::vector<int32_t> prompt = vocab.encode(o->prompt, /*add_special=*/true, /*parse_special=*/true);
        if (prompt.empty()) fail("the prompt is empty and the vocabulary adds no BOS token: nothing to condition on");
        if (static_cast<int64_t>(prompt.size()) > cp.n_ctx)
            fail("the prompt has {} tokens, more than the context size {}", prompt.size(), cp.n_ctx);

        if (!o->json) {
            std::fputs(o->prompt.c_str(), stdout);
            std::fflush(stdout);
        }
        tok::StreamDecoder dec(vocab);
        std::string text;
        // SentencePiece marks a word start with a space; the first piece after an empty prompt drops it,
        // as the reference decoders do.
        bool strip_space = o->prompt.empty();
        auto emit = [&](const std::string& piece) {
            std::string p = piece;
            if (strip_space && !p.empty()) {
                if (p[0] == ' ') p.erase(0, 1);
                strip_space = false;
            }
            text += p;
            if (!o->json) {
                std::fputs(p.c_str(), stdout);
                std::fflush(stdout);
            }
        };
        GenerateOptions go;
        go.n_predict = o->n_predict;
        go.eog = vocab.eog_ids();
        go.lookup = o->lookup;
        go.drafter = drafter.get();
        go.draft_max = o->draft_max;
        // Sampled drafts draw from the draft model's distribution with the same truncation (no penalties: the
        // rule needs only the distribution each draft was drawn from) on a random stream of their own.
        std::optional<Sampler> draft_sampler;
        if (drafter && o->sp.temperature > 0.0f) {
            SamplerParams dsp = o->sp;
            dsp.repeat_penalty = 1.0f;
            dsp.frequency_penalty = dsp.presence_penalty = 0.0f;
            dsp.seed = sampler.seed() ^ 0x9E3779B97F4A7C15ull;
            draft_sampler.emplace(dsp);
            go.draft_sampler = &*draft_sampler;
        }
        go.matcher = matcher ? &*matcher : nullptr;
        go.evict = evict ? &*evict : nullptr;
        go.on_token = [&](int32_t t) { emit(dec.push(t)); };
        const GenerateResult res = generate(ctx, prompt, sampler, go);
        if (evict && !o->json && res.evicted.cells_after < res.evicted.cells_before)
            std::fprintf(stderr, "[kv-evict: each KV head kept %d of the prompt's %d cells]\n", res.evicted.cells_after,
                         res.evicted.cells_before);
        if (res.context_full) std::fprintf(stderr, "\n[context of %d tokens is full: stopping]\n", cp.n_ctx);
        const std::vector<int32_t>& out = res.tokens;
        const SpeculativeStats& spec = res.spec;
        const KvEvictResult& evicted = res.evicted;
        emit(dec.flush());
        if (o->json) {
            nlohmann::json j;
            j["prompt_tokens"] = prompt;
            j["tokens"] = out;
            j["text"] = text;
            if (matcher) j["grammar_complete"] = matcher->can_end();
            j["timings"] = {{"prompt_seconds", res.prompt_seconds},
                            {"decode_seconds", res.decode_seconds},
                            {"prompt_tokens_per_second", res.prompt_seconds > 0 ? prompt.size() / res.prompt_seconds : 0.0},
                            {"decode_tokens_per_second", res.decode_seconds > 0 ? out.size() / res.decode_seconds : 0.0}};
            if (evict)
                j["kv_evict"] = {{"method", evict->method == KvEvictMethod::SnapKv ? "snapkv" : "recent"},
                                 {"budget", evict->budget},
                                 {"window", evict->window},
                                 {"prompt_cells", evicted.cells_before},
                                 {"kept_cells", evicted.cells_after}};
            if (o->lookup > 0 || drafter)
                j["speculative"] = {{"mode", drafter ? "draft" : "lookup"},
                                    {"verification", draft_sampler ? "rejection-sampling" : "match"},
                                    {"max_draft", drafter ? o->draft_max : o->lookup},
                                    {"steps", spec.steps},
                                    {"drafted", spec.drafted},
                                    {"accepted", spec.accepted},
                                    {"acceptance_rate", spec.acceptance_rate()},
                                    {"tokens_per_step", spec.steps > 0 ? static_cast<double>(out.size()) / (spec.steps + 1) : 0.0}};
            fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else {
            std::fputs("\n", stdout);
        }
        if (matcher && !matcher->can_end())
            std::fprintf(stderr, "[stopped after %zu tokens, before the grammar was complete]\n", out.size());
    });
}

}  // namespace hearth::cli
