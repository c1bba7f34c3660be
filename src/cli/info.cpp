#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/embed.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "store/model_store.h"

namespace hearth::cli {
namespace {

const char* ffn_act_name(FfnAct a) {
    switch (a) {
        case FfnAct::Silu: return "silu";
        case FfnAct::GeluTanh: return "gelu-tanh";
        case FfnAct::Gelu: return "gelu";
    }
    return "?";
}

// What sets this architecture apart from the llama block; only what the model actually uses.
nlohmann::json specifics(const Model& m) {
    const HParams& hp = m.hp;
    nlohmann::json j = nlohmann::json::object();
    const LayerWeights* l0 = m.layers.empty() ? nullptr : &m.layers[0];
    if (hp.ffn_act != FfnAct::Silu) j["ffn"] = std::string(hp.causal ? "gated " : "") + ffn_act_name(hp.ffn_act);
    if (l0 && l0->attn_q_norm) j["qk-norm"] = "per-head RMSNorm of q and k before rope";
    if (l0 && l0->post_attn_norm) j["post-norms"] = "after attention and after the FFN";
    if (l0 && l0->wqkv) j["fused"] = "attn_qkv [q|k|v], ffn_up [gate|up]";
    if (hp.embd_scale != 1.0f) j["embd-scale"] = hp.embd_scale;
    if (hp.residual_scale != 1.0f) j["residual-scale"] = hp.residual_scale;
    if (hp.attn_scale > 0) j["attn-scale"] = hp.attn_scale;
    if (hp.logit_scale != 1.0f) j["logit-scale"] = hp.logit_scale;
    if (hp.final_logit_softcap > 0) j["logit-softcap"] = hp.final_logit_softcap;
    if (hp.rope_freq_scale != 1.0f) j["rope-scale"] = hp.rope_freq_scale;
    if (!m.rope_freqs.empty()) j["rope-freqs"] = "llama3 per-dimension divisors";
    if (m.rope_factors_long)
        j["longrope"] = fmt::format("short/long factors, original context {}, attn factor {}", hp.n_ctx_orig,
                                    hp.rope_attn_factor);
    if (hp.sliding_window > 0) {
        int64_t n = 0;
        for (int64_t il = 0; il < hp.n_layer; ++il) n += hp.is_sliding(il);
        j["sliding-window"] = fmt::format("{} tokens on {} of {} layers (local rope base {}), the others global",
                                          hp.sliding_window, n, hp.n_layer, hp.rope_base_sliding);
    }
    if (hp.n_expert > 0)
        j["experts"] = fmt::format("{} used of {}, width {}{}", hp.n_expert_used, hp.n_expert, hp.n_ff_exp,
                                   hp.expert_weights_norm ? ", weights renormalised" : "");
    if (!hp.causal) {
        j["attention"] = "bidirectional (encoder)";
        j["norm"] = hp.norm_type == NormType::Layer ? "LayerNorm" : "RMSNorm";
        if (hp.n_token_types > 0) j["token-types"] = hp.n_token_types;
    }
    if (hp.pooling != Pooling::None) j["pooling"] = pooling_name(hp.pooling);
    return j;
}

}  // namespace

void add_info(CLI::App& app) {
    auto* cmd = app.add_subcommand("info", "Show a model's architecture, hyper-parameters, tensor types and size");
    struct Opts {
        std::string model;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o] {
        auto m = Model::load(store::resolve_model(o->model), /*use_mmap=*/true);  // info reads metadata only
        const HParams& hp = m->hp;
        std::map<std::string, std::pair<int, int64_t>> types;  // name -> (tensors, bytes)
        for (const auto& t : m->file.tensors()) {
            auto& e = types[dtype_name(t.type)];
            e.first++;
            e.second += static_cast<int64_t>(t.nbytes);
        }
        // KV cache for the training context in the engine's default cache type (f16).
        const int64_t kv_bytes =
            2 * hp.n_layer * hp.kv_dim() * hp.n_ctx_train * static_cast<int64_t>(sizeof(f16_t));
        if (o->json) {
            nlohmann::json j;
            j["file"] = o->model;
            j["architecture"] = hp.arch;
            j["name"] = hp.name;
            j["gguf_version"] = m->file.version();
            j["n_vocab"] = hp.n_vocab;
            j["n_ctx_train"] = hp.n_ctx_train;
            j["n_embd"] = hp.n_embd;
            j["n_layer"] = hp.n_layer;
            j["n_head"] = hp.n_head;
            j["n_head_kv"] = hp.n_head_kv;
            j["head_dim"] = hp.head_dim;
            j["n_ff"] = hp.n_ff;
            j["rope_base"] = hp.rope_base;
            j["rms_eps"] = hp.rms_eps;
            j["tied_output"] = hp.tied_output;
            j["attention_bias"] = !m->layers.empty() && static_cast<bool>(m->layers[0].bq);
            j["causal"] = hp.causal;
            j["rope_type"] = hp.rope_type == RopeType::Norm ? "normal" : "neox";
            j["ffn_activation"] = ffn_act_name(hp.ffn_act);
            j["specifics"] = specifics(*m);
            j["n_params"] = m->n_params();
            j["weight_bytes"] = m->weight_bytes();
            j["bytes_per_token"] = m->bytes_per_token();
            j["kv_cache_bytes_full_context"] = kv_bytes;
            j["kv_cache_type"] = "f16";
            for (const auto& [name, e] : types) j["tensor_types"][name] = {{"tensors", e.first}, {"bytes", e.second}};
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("file            {}\n", o->model);
        fmt::print("architecture    {}{}\n", hp.arch, hp.name.empty() ? "" : " (" + hp.name + ")");
        fmt::print("vocab           {}\n", hp.n_vocab);
        fmt::print("context (train) {}\n", hp.n_ctx_train);
        fmt::print("embedding       {}\n", hp.n_embd);
        fmt::print("layers          {}\n", hp.n_layer);
        fmt::print("heads           {} query / {} kv, head size {}\n", hp.n_head, hp.n_head_kv, hp.head_dim);
        fmt::print("feed-forward    {}\n", hp.n_ff);
        fmt::print("rope            base {}, {}\n", hp.rope_base, hp.rope_type == RopeType::Norm ? "normal" : "neox");
        fmt::print("output          {}\n", hp.tied_output ? "tied to token_embd" : "separate");
        if (!m->layers.empty() && m->layers[0].bq) fmt::print("attention bias  q, k, v\n");
        const nlohmann::json spec = specifics(*m);
        for (const auto& [k, v] : spec.items())
            fmt::print("{:<15} {}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
        fmt::print("parameters      {} ({:.1f} M)\n", m->n_params(), m->n_params() / 1e6);
        fmt::print("weights         {:.1f} MiB\n", m->weight_bytes() / 1048576.0);
        fmt::print("read per token  {:.1f} MiB\n", m->bytes_per_token() / 1048576.0);
        fmt::print("kv cache        {:.1f} MiB at {} tokens (f16)\n", kv_bytes / 1048576.0, hp.n_ctx_train);
        fmt::print("tensor types   ");
        for (const auto& [name, e] : types) fmt::print(" {} x{} ({:.1f} MiB)", name, e.first, e.second / 1048576.0);
        fmt::print("\n");
    });
}

}  // namespace hearth::cli
