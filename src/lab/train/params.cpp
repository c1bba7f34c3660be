#include "lab/train/params.h"

#include <cmath>
#include <cstring>
#include <random>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"

namespace hearth::lab {

TrainShape train_shape_from(const SynthShape& s) {
    if (s.arch != "llama") fail("hearth train makes llama models; shape '{}' is {}", s.name, s.arch);
    if (s.moe()) fail("shape '{}': training mixture-of-experts models is not supported", s.name);
    TrainShape t;
    t.n_vocab = s.n_vocab;
    t.n_embd = s.n_embd;
    t.n_layer = s.n_layer;
    t.n_head = s.n_head;
    t.n_head_kv = s.n_head_kv;
    t.head_dim = s.head_dim;
    t.n_ff = s.n_ff;
    t.rope_base = s.rope_base;
    t.rms_eps = s.rms_eps;
    t.tied = s.tied;
    if (s.llama3_rope) fail("shape '{}': llama3 rope scaling is not trained (it extends a trained context)", s.name);
    return t;
}

ParamLayout::ParamLayout(const TrainShape& shape) : shape_(shape) {
    const TrainShape& s = shape;
    if (s.n_vocab <= 0 || s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 ||
        s.head_dim <= 0)
        fail("model shape: every dimension must be positive");
    if (s.n_head % s.n_head_kv != 0) fail("model shape: heads {} is not a multiple of kv_heads {}", s.n_head, s.n_head_kv);
    if (s.head_dim % 2 != 0) fail("model shape: head_dim {} must be even (rope rotates pairs)", s.head_dim);
    auto add = [&](const std::string& name, int64_t cols, int64_t rows, bool decay) {
        ParamTensor t;
        t.name = name;
        t.dims = rows > 1 || decay ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{cols};
        t.offset = n_floats_;
        t.rows = rows;
        t.cols = cols;
        t.decay = decay;
        // Each tensor starts on a 64-byte boundary, so that rows of the matrices are aligned for the kernels.
        n_floats_ += static_cast<size_t>((t.size() + 15) / 16 * 16);
        tensors_.push_back(t);
        return t.offset;
    };
    const int64_t E = s.n_embd;
    tok_embd_ = add("token_embd.weight", E, s.n_vocab, true);
    output_norm_ = add("output_norm.weight", E, 1, false);
    output_ = s.tied ? tok_embd_ : add("output.weight", E, s.n_vocab, true);
    for (int64_t i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerOffsets l;
        l.attn_norm = add(p + "attn_norm.weight", E, 1, false);
        l.wq = add(p + "attn_q.weight", E, s.q_dim(), true);
        l.wk = add(p + "attn_k.weight", E, s.kv_dim(), true);
        l.wv = add(p + "attn_v.weight", E, s.kv_dim(), true);
        l.wo = add(p + "attn_output.weight", s.q_dim(), E, true);
        l.ffn_norm = add(p + "ffn_norm.weight", E, 1, false);
        l.w_gate = add(p + "ffn_gate.weight", E, s.n_ff, true);
        l.w_up = add(p + "ffn_up.weight", E, s.n_ff, true);
        l.w_down = add(p + "ffn_down.weight", s.n_ff, E, true);
        layers_.push_back(l);
    }
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
    for (const ParamTensor& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

void init_params(const ParamLayout& layout, uint64_t seed, float stddev, float* params) {
    std::memset(params, 0, layout.n_floats() * sizeof(float));
    const float resid_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(layout.shape().n_layer));
    uint64_t index = 0;
    for (const ParamTensor& t : layout.tensors()) {
        float* p = params + t.offset;
        ++index;
        if (!t.decay) {
            std::fill(p, p + t.size(), 1.0f);
            continue;
        }
        const bool resid = t.name.find("attn_output") != std::string::npos || t.name.find("ffn_down") != std::string::npos;
        const double sd = stddev * (resid ? resid_scale : 1.0f);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < t.rows; ++r) {
            // One generator per row, seeded from (seed, tensor, row): the weights do not depend on threads.
            std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index * 1000003ull + static_cast<uint64_t>(r));
            float* row = p + r * t.cols;
            for (int64_t c = 0; c < t.cols; c += 2) {
                // Box-Muller from raw 53-bit uniforms (std::normal_distribution differs between libraries).
                const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
                const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
                const double rad = std::sqrt(-2.0 * std::log(u1));
                row[c] = static_cast<float>(sd * rad * std::cos(2 * M_PI * u2));
                if (c + 1 < t.cols) row[c + 1] = static_cast<float>(sd * rad * std::sin(2 * M_PI * u2));
            }
        }
    }
}

void add_model_metadata(const ParamLayout& layout, const gguf::File* tokenizer, const std::string& name,
                        gguf::Writer& w) {
    const TrainShape& s = layout.shape();
    w.set("general.architecture", gguf::Value::str("llama"));
    w.set("general.name", gguf::Value::str(name));
    w.set("general.alignment", gguf::Value::u32(32));
    if (tokenizer) {
        for (const auto& [key, value] : tokenizer->metadata())
            if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
    } else {
        std::vector<std::string> toks;
        for (int64_t i = 0; i < layout.shape().n_vocab; ++i) toks.push_back("<" + std::to_string(i) + ">");
        w.set("tokenizer.ggml.model", gguf::Value::str("none"));
        w.set("tokenizer.ggml.tokens", gguf::Value::str_array(toks));
        w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(std::vector<int32_t>(toks.size(), 1)));
    }
    auto u32 = [](int64_t v) { return gguf::Value::u32(static_cast<uint32_t>(v)); };
    w.set("llama.context_length", u32(s.n_ctx));
    w.set("llama.embedding_length", u32(s.n_embd));
    w.set("llama.block_count", u32(s.n_layer));
    w.set("llama.feed_forward_length", u32(s.n_ff));
    w.set("llama.attention.head_count", u32(s.n_head));
    w.set("llama.attention.head_count_kv", u32(s.n_head_kv));
    w.set("llama.attention.key_length", u32(s.head_dim));
    w.set("llama.attention.value_length", u32(s.head_dim));
    w.set("llama.rope.dimension_count", u32(s.head_dim));
    w.set("llama.rope.freq_base", gguf::Value::f32(s.rope_base));
    w.set("llama.attention.layer_norm_rms_epsilon", gguf::Value::f32(s.rms_eps));
    w.set("llama.vocab_size", u32(s.n_vocab));
}

void add_model_tensors(const ParamLayout& layout, const float* params, DType type, const std::string& prefix,
                       gguf::Writer& w, std::vector<std::vector<uint8_t>>& store) {
    if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
        fail("trained weights are written as F32, F16 or BF16 (quantize afterwards with `hearth quantize`)");
    for (const ParamTensor& t : layout.tensors()) {
        const float* p = params + t.offset;
        const DType tt = t.dims.size() == 1 ? DType::F32 : type;
        if (tt == DType::F32) {
            w.add_tensor(prefix + t.name, tt, t.dims, p, static_cast<size_t>(t.size()) * sizeof(float));
            continue;
        }
        store.emplace_back(row_bytes(tt, t.cols) * static_cast<size_t>(t.rows));
        auto& buf = store.back();
        for (int64_t r = 0; r < t.rows; ++r)
            kernels::quantize_row(tt, p + r * t.cols, buf.data() + r * row_bytes(tt, t.cols), t.cols);
        w.add_tensor(prefix + t.name, tt, t.dims, buf.data(), buf.size());
    }
}

void read_params(const ParamLayout& layout, const gguf::File& f, const std::string& prefix, float* params) {
    for (const ParamTensor& t : layout.tensors()) {
        const gguf::TensorInfo* ti = f.find_tensor(prefix + t.name);
        if (!ti) fail("{}: missing tensor '{}'", f.path(), prefix + t.name);
        if (ti->dims != t.dims)
            fail("{}: tensor '{}' has the wrong shape for this model", f.path(), prefix + t.name);
        if (ti->type != DType::F32 && ti->type != DType::F16 && ti->type != DType::BF16)
            fail("{}: tensor '{}' is {}; training starts from F32, F16 or BF16 weights", f.path(), prefix + t.name,
                 dtype_name(ti->type));
        const size_t rb = row_bytes(ti->type, t.cols);
        for (int64_t r = 0; r < t.rows; ++r)
            kernels::dequantize_row(ti->type, ti->data + r * rb, params + t.offset + r * t.cols, t.cols);
    }
}

TrainShape train_shape_of(const gguf::File& f) {
    const std::string arch = f.get_str("general.architecture");
    if (arch != "llama") fail("{}: architecture {} cannot be trained (llama only)", f.path(), arch);
    TrainShape s;
    s.n_embd = f.get_i64("llama.embedding_length");
    s.n_layer = f.get_i64("llama.block_count");
    s.n_ff = f.get_i64("llama.feed_forward_length");
    s.n_head = f.get_i64("llama.attention.head_count");
    s.n_head_kv = f.get_i64_or("llama.attention.head_count_kv", s.n_head);
    s.head_dim = f.get_i64_or("llama.attention.key_length", s.n_head > 0 ? s.n_embd / s.n_head : 0);
    if (f.get_i64_or("llama.rope.dimension_count", s.head_dim) != s.head_dim)
        fail("{}: partial rope (rope.dimension_count != head dim) is not trained", f.path());
    s.rope_base = f.get_f32_or("llama.rope.freq_base", 10000.0f);
    s.rms_eps = f.get_f32_or("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    s.n_ctx = f.get_i64_or("llama.context_length", 0);
    const gguf::TensorInfo& emb = f.tensor("token_embd.weight");
    if (emb.dims.size() != 2) fail("{}: token_embd.weight is not a matrix", f.path());
    s.n_vocab = emb.dims[1];
    s.tied = f.find_tensor("output.weight") == nullptr;
    return s;
}

}  // namespace hearth::lab
