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
    if (arch == "llama") {
        arch::load_llama(*m);
    } else if (arch == "qwen2") {
        arch::load_qwen2(*m);
    } else {
        fail("{}: unknown architecture '{}' (supported: llama, qwen2)", path, arch);
    }
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
    for (const auto& l : layers)
        for (const Weight* w : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.ffn_norm, &l.ffn_gate,
                                &l.ffn_up, &l.ffn_down})
            n += w->bytes();
    return n;
}

}  // namespace hearth
