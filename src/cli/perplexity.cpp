#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lab/perplexity.h"
#include "lab/train/data.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

void add_perplexity(CLI::App& app) {
    auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file or a corpus split (llama.cpp's method)");
    struct Opts {
        std::string model, file, data, split = "val";
        int ctx = 512;
        int chunks = 0;
        int threads = 0;
        bool json = false;
        bool mmap = false;
        std::string kv_type = "f16";
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    auto* file = cmd->add_option("-f,--file", o->file, "Text file");
    auto* data = cmd->add_option("--data", o->data,
                                 "Corpus folder (`hearth data man`): its documents tokenized as `hearth train` does, "
                                 "each as BOS, text, EOS");
    file->excludes(data);
    cmd->add_option("--split", o->split, "With --data: the split, val (default) or train");
    cmd->add_option("--chunks", o->chunks, "Score only the first N windows (default: all)");
    cmd->add_option("-c,--ctx-size", o->ctx, "Window size in tokens");
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it into memory");
    cmd->add_flag("--json", o->json, "Print JSON");
    add_kv_type_option(cmd, o->kv_type);
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        if (o->file.empty() && o->data.empty()) fail("perplexity: give a text file (-f) or a corpus folder (--data)");
        if (o->chunks < 0) fail("--chunks must be positive (got {})", o->chunks);
        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        std::vector<int32_t> tokens;
        if (!o->data.empty()) {
            if (o->split != "val" && o->split != "train") fail("--split must be val or train (got '{}')", o->split);
            tokens = lab::tokenize_split(o->data, o->split, vocab, o->threads).tokens;
        } else {
            tokens = vocab.encode(read_text(o->file, "text"), /*add_special=*/true, /*parse_special=*/false);
        }
        ContextParams cp;
        cp.n_threads = o->threads;
        cp.kv_type = parse_kv_type(o->kv_type);
        cp.n_ctx = o->ctx;
        if (o->ctx < 8) fail("context size must be at least 8 (got {})", o->ctx);
        Context ctx(*model, cp);
        int64_t windows = static_cast<int64_t>(tokens.size() / static_cast<size_t>(o->ctx));
        if (o->chunks > 0) windows = std::min<int64_t>(windows, o->chunks);
        Progress bar("perplexity", windows);
        const PerplexityResult r = perplexity(ctx, tokens, o->ctx, vocab.bos(), vocab.add_bos(),
                                              [&](int done, int, double ppl) {
                                                  bar.update(done, fmt::format("ppl {:.4f}", ppl));
                                              },
                                              o->chunks);
        bar.finish();
        if (o->json) {
            nlohmann::json j;
            j["model"] = o->model;
            if (!o->file.empty()) j["file"] = o->file;
            if (!o->data.empty()) j["data"] = o->data, j["split"] = o->split;
            j["n_ctx"] = o->ctx;
            j["kv_type"] = o->kv_type;
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
