#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lab/perplexity.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

void add_perplexity(CLI::App& app) {
    auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file (llama.cpp's method)");
    struct Opts {
        std::string model, file;
        int ctx = 512;
        int threads = 0;
        bool json = false;
        bool mmap = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_option("-f,--file", o->file, "Text file")->required();
    cmd->add_option("-c,--ctx-size", o->ctx, "Window size in tokens");
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it into memory");
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        const std::string text = read_text(o->file, "text");
        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        const std::vector<int32_t> tokens = vocab.encode(text, /*add_special=*/true, /*parse_special=*/false);
        ContextParams cp;
        cp.n_threads = o->threads;
        cp.n_ctx = o->ctx;
        if (o->ctx < 8) fail("context size must be at least 8 (got {})", o->ctx);
        Context ctx(*model, cp);
        Progress bar("perplexity", static_cast<int64_t>(tokens.size() / static_cast<size_t>(o->ctx)));
        const PerplexityResult r = perplexity(ctx, tokens, o->ctx, vocab.bos(), vocab.add_bos(),
                                              [&](int done, int, double ppl) {
                                                  bar.update(done, fmt::format("ppl {:.4f}", ppl));
                                              });
        bar.finish();
        if (o->json) {
            nlohmann::json j;
            j["model"] = o->model;
            j["file"] = o->file;
            j["n_ctx"] = o->ctx;
            j["tokens"] = tokens.size();
            j["chunks"] = r.chunks;
            j["scored_tokens"] = r.scored_tokens;
            j["nll_mean"] = r.nll_mean;
            j["ppl"] = r.ppl;
            j["running_ppl"] = r.running_ppl;
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("{} tokens, {} windows of {}, {} scored\n", tokens.size(), r.chunks, o->ctx, r.scored_tokens);
        fmt::print("perplexity {:.4f} (mean NLL {:.6f})\n", r.ppl, r.nll_mean);
    });
}

}  // namespace hearth::cli
