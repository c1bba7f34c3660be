#include "model/model.h"

#include <cstring>

#include "base/error.h"

namespace hearth {

std::unique_ptr<Model> Model::load(const std::string& path, bool use_mmap) {
    auto m = std::make_unique<Model>(
        Model{gguf::File::open(path, use_mmap ? gguf::File::LoadMode::Map : gguf::File::LoadMode::Read)});
    const std::string arch = m->file.get_str_or("general.architecture", "");
    if (arch.empty()) fail("{}: general.architecture is missing: not a model file", path);
    m->hp.arch = arch;
    m->hp.name = m->file.get_str_or("general.name", "");
    using Loader = void (*)(Model&);
    static const std::pair<const char*, Loader> kArchs[] = {
        {"llama", arch::load_llama},     {"qwen2", arch::load_qwen2}, {"qwen3", arch::load_qwen3},
        {"qwen3moe", arch::load_qwen3},  {"gemma3", arch::load_gemma3}, {"granite", arch::load_granite},
        {"phi3", arch::load_phi3},       {"bert", arch::load_bert},
    };
    Loader load = nullptr;
    std::string names;
    for (const auto& [name, fn] : kArchs) {
        if (arch == name) load = fn;
        names += names.empty() ? name : std::string(", ") + name;
    }
    if (!load) fail("{}: unknown architecture '{}' (supported: {})", path, arch, names);
    load(*m);
    return m;
}

int64_t Model::n_params() const {
    int64_t n = 0;
    for (const auto& t : file.tensors()) n += t.n_elements;
    return n;
}

size_t Model::weight_bytes() const {
    size_t n = 0;
    for (const auto& t : file.tensors()) n += t.nbytes;
    return n;
}

size_t Model::bytes_per_token() const {
    size_t n = output_norm.bytes() + output.bytes();
    if (!hp.tied_output) n += tok_embd.row_bytes;
    for (const auto& l : layers) {
        // Fused tensors (wqkv, phi3's gate-up) are counted through their views.
        for (const Weight* w : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.attn_q_norm,
                                &l.attn_k_norm, &l.post_attn_norm, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down,
                                &l.post_ffn_norm, &l.ffn_gate_inp, &l.bo, &l.ffn_up_b, &l.ffn_down_b})
            n += w->bytes();
        if (!l.gate_exps.empty())  // a token reads the experts it is routed to
            n += static_cast<size_t>(hp.n_expert_used) *
                 (l.gate_exps[0].bytes() + l.up_exps[0].bytes() + l.down_exps[0].bytes());
    }
    return n;
}

}  // namespace hearth
