#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint.h"
#include "grammar/matcher.h"
#include "model/forward.h"
#include "runtime/sampler.h"
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
        std::string kv_type = "f16";
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
    add_kv_type_option(cmd, o->kv_type);
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
        cp.kv_type = parse_kv_type(o->kv_type);
        const int64_t train = model->hp.n_ctx_train > 0 ? model->hp.n_ctx_train : 4096;
        if (cmd->count("--ctx-size") && o->ctx <= 0) fail("context size must be positive (got {})", o->ctx);
        cp.n_ctx = o->ctx > 0 ? o->ctx : static_cast<int>(std::min<int64_t>(train, 4096));
        Context ctx(*model, cp);

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
        int32_t pos = static_cast<int32_t>(prompt.size());
        const std::vector<float>* logits = &ctx.decode(batch);
        const int32_t n_vocab = static_cast<int32_t>(model->hp.n_vocab);
        std::vector<float> masked;
        for (int i = 0; i < o->n_predict; ++i) {
            const float* lg = logits->data();
            if (matcher) {
                if (matcher->must_end()) break;  // the text is complete and nothing may follow
                masked.assign(logits->begin(), logits->begin() + n_vocab);
                if (!matcher->apply(masked.data(), n_vocab, vocab.eog_ids()))
                    fail("the grammar allows no token after {} generated tokens", out.size());
                lg = masked.data();
            }
            const int32_t tok = sampler.sample(lg, n_vocab);
            sampler.accept(tok);
            if (vocab.is_eog(tok)) break;
            if (matcher && !matcher->accept_token(tok))
                fail("internal error: the sampler picked token {} the grammar forbids", tok);
            out.push_back(tok);
            emit(dec.push(tok));
            if (i + 1 == o->n_predict) break;
            if (pos >= cp.n_ctx) {
                std::fprintf(stderr, "\n[context of %d tokens is full: stopping]\n", cp.n_ctx);
                break;
            }
            batch.clear();
            batch.add(tok, pos++, 0, true);
            logits = &ctx.decode(batch);
        }
        emit(dec.flush());
        if (o->json) {
            nlohmann::json j;
            j["prompt_tokens"] = prompt;
            j["tokens"] = out;
            j["text"] = text;
            if (matcher) j["grammar_complete"] = matcher->can_end();
            fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else {
            std::fputs("\n", stdout);
        }
        if (matcher && !matcher->can_end())
            std::fprintf(stderr, "[stopped after %zu tokens, before the grammar was complete]\n", out.size());
    });
}

}  // namespace hearth::cli
