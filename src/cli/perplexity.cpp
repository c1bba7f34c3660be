#include <algorithm>
#include <memory>
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
        KvOptions kv;
        std::string kl_base;
        int step = -1;
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
    add_kv_options(cmd, o->kv);
    cmd->add_option("--kl-base", o->kl_base,
                    "Also run the model with this KV cache type and report the KL divergence of the next-token "
                    "distributions from it, the base perplexity and the top-1 agreement");
    cmd->add_option("--step", o->step,
                    "Tokens per forward pass within a window (default: 16 when a compressed KV type is involved, "
                    "so each token reads the cache as decoding would; else the whole window)");
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
        o->kv.apply(cp);
        cp.n_ctx = o->ctx;
        if (o->ctx < 8) fail("context size must be at least 8 (got {})", o->ctx);
        if (cmd->count("--step") && o->step <= 0) fail("--step must be at least 1 (got {})", o->step);
        Context ctx(*model, cp);
        std::unique_ptr<Context> base;
        ContextParams base_cp = cp;
        if (!o->kl_base.empty()) {
            base_cp.kv_type = parse_kv_type(o->kl_base);
            base = std::make_unique<Context>(*model, base_cp);
        }
        const bool compressed = kv_type_quantized(cp.kv_type) || (base && kv_type_quantized(base_cp.kv_type));
        int64_t windows = static_cast<int64_t>(tokens.size() / static_cast<size_t>(o->ctx));
        if (o->chunks > 0) windows = std::min<int64_t>(windows, o->chunks);
        Progress bar("perplexity", windows);
        PerplexityOptions po;
        po.max_chunks = o->chunks;
        po.step = o->step > 0 ? o->step : compressed ? ctx.kv().config().block_size : 0;
        po.base = base.get();
        po.on_chunk = [&](int done, int, double ppl) { bar.update(done, fmt::format("ppl {:.4f}", ppl)); };
        const PerplexityResult r = perplexity(ctx, tokens, o->ctx, vocab.bos(), vocab.add_bos(), po);
        bar.finish();
        if (o->json) {
            nlohmann::json j;
            j["model"] = o->model;
            if (!o->file.empty()) j["file"] = o->file;
            if (!o->data.empty()) j["data"] = o->data, j["split"] = o->split;
            j["n_ctx"] = o->ctx;
            j["kv_type"] = o->kv.type;
            j["kv_bytes_per_token_per_layer"] = ctx.kv().layout().bytes_per_token();
            if (kv_type_quantized(cp.kv_type)) j["kv_residual"] = cp.kv_residual;
            j["step"] = r.step;
            j["tokens"] = tokens.size();
            j["chunks"] = r.chunks;
            j["scored_tokens"] = r.scored_tokens;
            j["nll_mean"] = r.nll_mean;
            j["ppl"] = r.ppl;
            j["running_ppl"] = r.running_ppl;
            if (base) {
                j["base"] = {{"kv_type", o->kl_base},
                             {"ppl", r.base_ppl},
                             {"kv_bytes_per_token_per_layer", base->kv().layout().bytes_per_token()}};
                j["delta_ppl_pct"] = 100.0 * (r.ppl / r.base_ppl - 1.0);
                j["kl_mean"] = r.kl_mean;
                j["kl_max"] = r.kl_max;
                j["top1_agree"] = r.top1_agree;
            }
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("{} tokens, {} windows of {}, {} scored\n", tokens.size(), r.chunks, o->ctx, r.scored_tokens);
        fmt::print("perplexity {:.4f} (mean NLL {:.6f}), KV cache {}: {:.1f} bytes per token per layer\n", r.ppl,
                   r.nll_mean, o->kv.type, ctx.kv().layout().bytes_per_token());
        if (base)
            fmt::print("base {}: perplexity {:.4f} ({:+.3f} %), mean KL {:.6f} (max {:.4f}), top-1 agreement {:.2f} %, "
                       "{:.1f} bytes per token per layer\n",
                       o->kl_base, r.base_ppl, 100.0 * (r.ppl / r.base_ppl - 1.0), r.kl_mean, r.kl_max,
                       100.0 * r.top1_agree, base->kv().layout().bytes_per_token());
    });
}

}  // namespace hearth::cli
