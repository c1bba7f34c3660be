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
                  "Print {prompt_tokens, tokens, text, grammar_complete} as JSON instead of streaming");
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
        const int64_t train = model->hp.n_ctx_train > 0 ? model->hp.n_ctx_train : 4096;
        if (cmd->count("--ctx-size") && o->ctx <= 0) fail("context size must be positive (got {})", o->ctx);
        cp.n_ctx = o->ctx > 0 ? o->ctx : static_cast<int>(std::min<int64_t>(train, 4096));
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

        Batch batch;
        for (size_t i = 0; i < prompt.size(); ++i)
            batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
        for (int32_t t : prompt) sampler.accept(t);

        if (!o->json) {
            std::fputs(o->prompt.c_str(), stdout);
            std::fflush(stdout);
        }
        tok::StreamDecoder dec(vocab);
        std::vector<int32_t> out;
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
        // Each forward pass feeds the last sampled token and, with --lookup, a draft of the tokens that may
        // follow it; its rows of logits are sampled in order until the sampled token differs from the draft's
        // (runtime/speculative.h says why the output is then the same as without the draft).
        const int32_t n_vocab = static_cast<int32_t>(model->hp.n_vocab);
        std::vector<int32_t> history = prompt, draft;
        SpeculativeStats spec;
        int32_t fed_at = static_cast<int32_t>(prompt.size()) - 1;  // position of the pass's first token
        const std::vector<float>* logits = &ctx.decode(batch);
        std::vector<float> masked;
        bool done = o->n_predict == 0;
        while (!done) {
            int32_t tok = -1;
            size_t row = 0;
            for (;; ++row) {
                const float* lg = logits->data() + row * static_cast<size_t>(n_vocab);
                if (matcher) {
                    if (matcher->must_end()) {  // the text is complete and nothing may follow
                        done = true;
                        break;
                    }
                    masked.assign(lg, lg + n_vocab);
                    if (!matcher->apply(masked.data(), n_vocab, vocab.eog_ids()))
                        fail("the grammar allows no token after {} generated tokens", out.size());
                    lg = masked.data();
                }
                tok = sampler.sample(lg, n_vocab);
                sampler.accept(tok);
                if (vocab.is_eog(tok)) {
                    done = true;
                    break;
                }
                if (matcher && !matcher->accept_token(tok))
                    fail("internal error: the sampler picked token {} the grammar forbids", tok);
                out.push_back(tok);
                history.push_back(tok);
                emit(dec.push(tok));
                if (static_cast<int>(out.size()) >= o->n_predict) {
                    done = true;
                    break;
                }
                if (row >= draft.size() || draft[row] != tok) break;  // the draft ends or goes another way
            }
            spec.accepted += static_cast<int64_t>(std::min(row, draft.size()));
            if (done) break;
            // Cells of the draft tokens after the first wrong one hold KV of text that was not generated.
            const int32_t pos = fed_at + static_cast<int32_t>(row) + 1;
            if (!draft.empty()) ctx.kv().truncate(0, pos);
            if (pos >= cp.n_ctx) {
                std::fprintf(stderr, "\n[context of %d tokens is full: stopping]\n", cp.n_ctx);
                break;
            }
            draft.clear();
            if (o->lookup > 0 || drafter) {
                const int room = std::min({drafter ? o->draft_max : o->lookup, cp.n_ctx - pos - 1,
                                           o->n_predict - static_cast<int>(out.size()) - 1});
                if (room > 0)
                    draft = drafter ? drafter->draft(history, static_cast<size_t>(room))
                                    : lookup_draft(history, static_cast<size_t>(room));
            }
            batch.clear();
            batch.add(tok, pos, 0, true);
            for (size_t k = 0; k < draft.size(); ++k) batch.add(draft[k], pos + 1 + static_cast<int32_t>(k), 0, true);
            fed_at = pos;
            logits = &ctx.decode(batch);
            ++spec.steps;
            spec.drafted += static_cast<int64_t>(draft.size());
        }
        emit(dec.flush());
        if (o->json) {
            nlohmann::json j;
            j["prompt_tokens"] = prompt;
            j["tokens"] = out;
            j["text"] = text;
            if (matcher) j["grammar_complete"] = matcher->can_end();
            if (o->lookup > 0 || drafter)
                j["speculative"] = {{"mode", drafter ? "draft" : "lookup"},
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
