// `synth` for every architecture: the metadata keys and tensors (names, types, dims) llama.cpp expects, the
// named shapes' hyper-parameters, errors for bad specs, and that each tiny model loads and decodes in hearth.
// The expected tensor lists here are written out independently of synth.cpp's builder on purpose.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/forward.h"
#include "model/synth.h"
#include "test_util.h"

namespace hearth {
namespace {

using test::tmp_dir;


std::string write(const std::string& spec, const std::string& file, DType type = DType::F16,
                  const std::string& vocab = "", uint64_t seed = 1) {
    SynthOptions o;
    o.shape = synth_shape(spec);
    o.type = type;
    o.seed = seed;
    o.vocab_path = vocab;
    const std::string path = tmp_dir() + "/" + file;
    synth_model(o, path);
    return path;
}

struct Expect {
    DType type;
    std::vector<int64_t> dims;
};
using Tensors = std::map<std::string, Expect>;

// Every tensor of the file must be expected, with its type and dims, and every expected one present.
void expect_tensors(const gguf::File& f, const Tensors& want) {
    EXPECT_EQ(f.tensors().size(), want.size());
    for (const auto& t : f.tensors()) {
        auto it = want.find(t.name);
        if (it == want.end()) {
            ADD_FAILURE() << "unexpected tensor " << t.name;
            continue;
        }
        EXPECT_EQ(dtype_name(t.type), std::string(dtype_name(it->second.type))) << t.name;
        EXPECT_EQ(t.dims, it->second.dims) << t.name;
    }
    for (const auto& [name, e] : want) EXPECT_NE(f.find_tensor(name), nullptr) << "missing " << name;
}

void expect_u32(const gguf::File& f, const std::string& key, uint32_t v) {
    const gguf::Value* x = f.find(key);
    ASSERT_NE(x, nullptr) << key;
    EXPECT_EQ(x->type, gguf::ValueType::UINT32) << key;
    EXPECT_EQ(x->u, v) << key;
}
void expect_f32(const gguf::File& f, const std::string& key, float v) {
    const gguf::Value* x = f.find(key);
    ASSERT_NE(x, nullptr) << key;
    EXPECT_EQ(x->type, gguf::ValueType::FLOAT32) << key;
    EXPECT_NEAR(x->f, v, std::abs(v) * 1e-6) << key;
}

// The keys every decoder file has (llama.cpp's names), under the architecture's prefix.
void expect_decoder_keys(const gguf::File& f, const std::string& arch, uint32_t ctx, uint32_t embd, uint32_t layers,
                         uint32_t ff, uint32_t heads, uint32_t kv, uint32_t head_dim, float rope_base, float eps) {
    EXPECT_EQ(f.get_str("general.architecture"), arch);
    const std::string a = arch + ".";
    expect_u32(f, a + "context_length", ctx);
    expect_u32(f, a + "embedding_length", embd);
    expect_u32(f, a + "block_count", layers);
    expect_u32(f, a + "feed_forward_length", ff);
    expect_u32(f, a + "attention.head_count", heads);
    expect_u32(f, a + "attention.head_count_kv", kv);
    expect_u32(f, a + "attention.key_length", head_dim);
    expect_u32(f, a + "attention.value_length", head_dim);
    expect_u32(f, a + "rope.dimension_count", head_dim);
    expect_f32(f, a + "rope.freq_base", rope_base);
    expect_f32(f, a + "attention.layer_norm_rms_epsilon", eps);
    expect_u32(f, a + "vocab_size", 256);
}

// No key of another architecture's prefix leaks into the file.
void expect_only_prefix(const gguf::File& f, const std::string& arch) {
    for (const auto& [k, v] : f.metadata())
        EXPECT_TRUE(k.rfind("general.", 0) == 0 || k.rfind("tokenizer.", 0) == 0 || k.rfind(arch + ".", 0) == 0) << k;
}

std::vector<float> f32_values(const gguf::TensorInfo& t) {
    std::vector<float> v(static_cast<size_t>(t.n_elements));
    std::memcpy(v.data(), t.data, v.size() * sizeof(float));
    return v;
}

const DType F16 = DType::F16, F32 = DType::F32;

TEST(Synth, Llama) {
    const auto path =
        write("embd=64,layers=2,heads=4,kv_heads=2,ff=128,vocab=256,llama3_rope=1,tied=0", "llama.gguf");
    const auto f = gguf::File::open(path);
    expect_decoder_keys(f, "llama", 8192, 64, 2, 128, 4, 2, 16, 10000, 1e-5f);
    expect_only_prefix(f, "llama");
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}}, {"output_norm.weight", {F32, {64}}},
                    {"output.weight", {F16, {64, 256}}},     {"rope_freqs.weight", {F32, {8}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        want[p + "attn_norm.weight"] = {F32, {64}};
        want[p + "attn_q.weight"] = {F16, {64, 64}};
        want[p + "attn_k.weight"] = {F16, {64, 32}};
        want[p + "attn_v.weight"] = {F16, {64, 32}};
        want[p + "attn_output.weight"] = {F16, {64, 64}};
        want[p + "ffn_norm.weight"] = {F32, {64}};
        want[p + "ffn_gate.weight"] = {F16, {64, 128}};
        want[p + "ffn_up.weight"] = {F16, {64, 128}};
        want[p + "ffn_down.weight"] = {F16, {128, 64}};
    }
    expect_tensors(f, want);
    for (float x : f32_values(f.tensor("blk.1.ffn_norm.weight"))) EXPECT_EQ(x, 1.0f);
}

// The generator must not change: tests elsewhere (oracle, conformance of quantization) are calibrated on the
// llama files it writes. The hash is of the file written before the other architectures were added.
TEST(Synth, LlamaFileUnchanged) {
    const auto path = write("tiny", "tiny.gguf", F16, "", 3);
    const std::string bytes = test::read_file(path);
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    EXPECT_EQ(bytes.size(), 187744u);
    EXPECT_EQ(h, 17368094946337829881ull) << "FNV-1a of tiny seed 3 F16";
}

TEST(Synth, Qwen2) {
    const auto f = gguf::File::open(
        write("arch=qwen2,embd=64,layers=2,heads=4,kv_heads=2,head_dim=16,ff=128,vocab=256,rope_base=1e6,eps=1e-6",
              "qwen2.gguf", DType::BF16));
    expect_decoder_keys(f, "qwen2", 8192, 64, 2, 128, 4, 2, 16, 1e6f, 1e-6f);
    expect_only_prefix(f, "qwen2");
    const DType B = DType::BF16;
    Tensors want = {{"token_embd.weight", {B, {64, 256}}}, {"output_norm.weight", {F32, {64}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        want[p + "attn_norm.weight"] = {F32, {64}};
        want[p + "attn_q.weight"] = {B, {64, 64}};
        want[p + "attn_q.bias"] = {F32, {64}};
        want[p + "attn_k.weight"] = {B, {64, 32}};
        want[p + "attn_k.bias"] = {F32, {32}};
        want[p + "attn_v.weight"] = {B, {64, 32}};
        want[p + "attn_v.bias"] = {F32, {32}};
        want[p + "attn_output.weight"] = {B, {64, 64}};
        want[p + "ffn_norm.weight"] = {F32, {64}};
        want[p + "ffn_gate.weight"] = {B, {64, 128}};
        want[p + "ffn_up.weight"] = {B, {64, 128}};
        want[p + "ffn_down.weight"] = {B, {128, 64}};
    }
    expect_tensors(f, want);
    // Biases are random, not zero.
    double sq = 0;
    for (float x : f32_values(f.tensor("blk.0.attn_k.bias"))) sq += x * x;
    EXPECT_GT(sq, 0.0);
}

// qwen3: q_dim (heads × head_dim = 128) differs from embd (64), and per-head q/k norms.
TEST(Synth, Qwen3) {
    const auto f = gguf::File::open(
        write("arch=qwen3,embd=64,layers=2,heads=4,kv_heads=2,head_dim=32,ff=128,vocab=256,ctx=4096", "qwen3.gguf"));
    expect_decoder_keys(f, "qwen3", 4096, 64, 2, 128, 4, 2, 32, 10000, 1e-5f);
    expect_only_prefix(f, "qwen3");
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}}, {"output_norm.weight", {F32, {64}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        want[p + "attn_norm.weight"] = {F32, {64}};
        want[p + "attn_q.weight"] = {F16, {64, 128}};
        want[p + "attn_k.weight"] = {F16, {64, 64}};
        want[p + "attn_v.weight"] = {F16, {64, 64}};
        want[p + "attn_q_norm.weight"] = {F32, {32}};
        want[p + "attn_k_norm.weight"] = {F32, {32}};
        want[p + "attn_output.weight"] = {F16, {128, 64}};
        want[p + "ffn_norm.weight"] = {F32, {64}};
        want[p + "ffn_gate.weight"] = {F16, {64, 128}};
        want[p + "ffn_up.weight"] = {F16, {64, 128}};
        want[p + "ffn_down.weight"] = {F16, {128, 64}};
    }
    expect_tensors(f, want);
}

TEST(Synth, Qwen3Moe) {
    const auto f = gguf::File::open(write("moe-tiny", "moe.gguf"));
    expect_decoder_keys(f, "qwen3moe", 8192, 64, 2, 64, 4, 2, 16, 1e6f, 1e-6f);
    expect_only_prefix(f, "qwen3moe");
    expect_u32(f, "qwen3moe.expert_count", 8);
    expect_u32(f, "qwen3moe.expert_used_count", 2);
    expect_u32(f, "qwen3moe.expert_feed_forward_length", 64);
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}}, {"output_norm.weight", {F32, {64}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        want[p + "attn_norm.weight"] = {F32, {64}};
        want[p + "attn_q.weight"] = {F16, {64, 64}};
        want[p + "attn_k.weight"] = {F16, {64, 32}};
        want[p + "attn_v.weight"] = {F16, {64, 32}};
        want[p + "attn_q_norm.weight"] = {F32, {16}};
        want[p + "attn_k_norm.weight"] = {F32, {16}};
        want[p + "attn_output.weight"] = {F16, {64, 64}};
        want[p + "ffn_norm.weight"] = {F32, {64}};
        want[p + "ffn_gate_inp.weight"] = {F32, {64, 8}};
        want[p + "ffn_gate_exps.weight"] = {F16, {64, 64, 8}};
        want[p + "ffn_up_exps.weight"] = {F16, {64, 64, 8}};
        want[p + "ffn_down_exps.weight"] = {F16, {64, 64, 8}};
    }
    expect_tensors(f, want);
    // Explicit spec with distinct widths: ff_exp sets the experts, ff the feed_forward_length key.
    const auto g = gguf::File::open(write(
        "arch=qwen3moe,embd=32,layers=1,heads=2,kv_heads=1,ff=48,ff_exp=80,experts=4,experts_used=3,vocab=256",
        "moe2.gguf", F32));
    expect_u32(g, "qwen3moe.feed_forward_length", 48);
    expect_u32(g, "qwen3moe.expert_feed_forward_length", 80);
    expect_u32(g, "qwen3moe.expert_used_count", 3);
    EXPECT_EQ(g.tensor("blk.0.ffn_gate_exps.weight").dims, (std::vector<int64_t>{32, 80, 4}));
    EXPECT_EQ(g.tensor("blk.0.ffn_down_exps.weight").dims, (std::vector<int64_t>{80, 32, 4}));
    EXPECT_EQ(g.tensor("blk.0.ffn_down_exps.weight").type, F32);
}

TEST(Synth, Gemma3) {
    const auto f = gguf::File::open(write(
        "arch=gemma3,embd=64,layers=2,heads=4,kv_heads=1,head_dim=32,ff=128,vocab=256,window=8,rope_base=1e6,eps=1e-6",
        "gemma3.gguf"));
    expect_decoder_keys(f, "gemma3", 8192, 64, 2, 128, 4, 1, 32, 1e6f, 1e-6f);
    expect_only_prefix(f, "gemma3");
    expect_u32(f, "gemma3.attention.sliding_window", 8);
    EXPECT_FALSE(f.has("gemma3.rope.scaling.type"));
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}}, {"output_norm.weight", {F32, {64}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        for (const char* n : {"attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"})
            want[p + n + ".weight"] = {F32, {64}};
        want[p + "attn_q.weight"] = {F16, {64, 128}};
        want[p + "attn_k.weight"] = {F16, {64, 32}};
        want[p + "attn_v.weight"] = {F16, {64, 32}};
        want[p + "attn_q_norm.weight"] = {F32, {32}};
        want[p + "attn_k_norm.weight"] = {F32, {32}};
        want[p + "attn_output.weight"] = {F16, {128, 64}};
        want[p + "ffn_gate.weight"] = {F16, {64, 128}};
        want[p + "ffn_up.weight"] = {F16, {64, 128}};
        want[p + "ffn_down.weight"] = {F16, {128, 64}};
    }
    expect_tensors(f, want);
}

TEST(Synth, Granite) {
    const auto f = gguf::File::open(
        write("arch=granite,embd=64,layers=2,heads=4,kv_heads=2,ff=128,vocab=256,logit_scale=4", "granite.gguf"));
    expect_decoder_keys(f, "granite", 8192, 64, 2, 128, 4, 2, 16, 10000, 1e-5f);
    expect_only_prefix(f, "granite");
    expect_f32(f, "granite.embedding_scale", 12.0f);
    expect_f32(f, "granite.residual_scale", 0.22f);
    expect_f32(f, "granite.attention.scale", 1.0f / 16);  // 1 / head_dim, as Granite 3.x
    expect_f32(f, "granite.logit_scale", 4.0f);
    EXPECT_EQ(f.tensors().size(), 2u + 2 * 9);
    EXPECT_NE(f.find_tensor("blk.1.ffn_gate.weight"), nullptr);
}

TEST(Synth, Phi3) {
    const auto f = gguf::File::open(write(
        "arch=phi3,embd=64,layers=2,heads=4,kv_heads=4,ff=96,vocab=256,tied=0,ctx=512,orig_ctx=128", "phi3.gguf"));
    expect_decoder_keys(f, "phi3", 512, 64, 2, 96, 4, 4, 16, 10000, 1e-5f);
    expect_only_prefix(f, "phi3");
    expect_u32(f, "phi3.rope.scaling.original_context_length", 128);
    expect_f32(f, "phi3.rope.scaling.attn_factor", static_cast<float>(std::sqrt(1 + std::log(4.0) / std::log(128.0))));
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}},
                    {"output_norm.weight", {F32, {64}}},
                    {"output.weight", {F16, {64, 256}}},
                    {"rope_factors_long.weight", {F32, {8}}},
                    {"rope_factors_short.weight", {F32, {8}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        want[p + "attn_norm.weight"] = {F32, {64}};
        want[p + "attn_qkv.weight"] = {F16, {64, 64 + 2 * 64}};
        want[p + "attn_output.weight"] = {F16, {64, 64}};
        want[p + "ffn_norm.weight"] = {F32, {64}};
        want[p + "ffn_up.weight"] = {F16, {64, 2 * 96}};
        want[p + "ffn_down.weight"] = {F16, {96, 64}};
    }
    expect_tensors(f, want);
    // Divisors increase from 1; the long set stretches far more than the short one.
    for (const char* n : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
        const auto v = f32_values(f.tensor(n));
        EXPECT_FLOAT_EQ(v.front(), 1.0f) << n;
        for (size_t i = 1; i < v.size(); ++i) EXPECT_GT(v[i], v[i - 1]) << n;
    }
    EXPECT_NEAR(f32_values(f.tensor("rope_factors_short.weight")).back(), 1.2f, 1e-6);
    EXPECT_NEAR(f32_values(f.tensor("rope_factors_long.weight")).back(), 40.0f, 1e-4);

    // Without longrope (context = original): only the original-context key, no factors.
    const auto g = gguf::File::open(write("arch=phi3,embd=64,layers=1,heads=4,ff=96,vocab=256,ctx=256", "phi3s.gguf"));
    expect_u32(g, "phi3.rope.scaling.original_context_length", 256);
    EXPECT_FALSE(g.has("phi3.rope.scaling.attn_factor"));
    EXPECT_EQ(g.find_tensor("rope_factors_long.weight"), nullptr);
}

TEST(Synth, Bert) {
    const auto f = gguf::File::open(write("bert-tiny", "bert.gguf"));
    EXPECT_EQ(f.get_str("general.architecture"), "bert");
    expect_only_prefix(f, "bert");
    expect_u32(f, "bert.context_length", 128);
    expect_u32(f, "bert.embedding_length", 64);
    expect_u32(f, "bert.block_count", 2);
    expect_u32(f, "bert.feed_forward_length", 128);
    expect_u32(f, "bert.attention.head_count", 4);
    expect_f32(f, "bert.attention.layer_norm_epsilon", 1e-12f);
    ASSERT_TRUE(f.has("bert.attention.causal"));
    EXPECT_EQ(f.find("bert.attention.causal")->type, gguf::ValueType::BOOL);
    EXPECT_FALSE(f.get_bool("bert.attention.causal"));
    expect_u32(f, "bert.pooling_type", 2);
    expect_u32(f, "tokenizer.ggml.token_type_count", 2);
    Tensors want = {{"token_embd.weight", {F16, {64, 256}}},
                    {"token_types.weight", {F16, {64, 2}}},
                    {"position_embd.weight", {F16, {64, 128}}},
                    {"token_embd_norm.weight", {F32, {64}}},
                    {"token_embd_norm.bias", {F32, {64}}}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
            want[p + n + ".weight"] = {F16, {64, 64}};
            want[p + n + ".bias"] = {F32, {64}};
        }
        for (const char* n : {"attn_output_norm", "layer_output_norm"}) {
            want[p + n + ".weight"] = {F32, {64}};
            want[p + n + ".bias"] = {F32, {64}};
        }
        want[p + "ffn_up.weight"] = {F16, {64, 128}};
        want[p + "ffn_up.bias"] = {F32, {128}};
        want[p + "ffn_down.weight"] = {F16, {128, 64}};
        want[p + "ffn_down.bias"] = {F32, {64}};
    }
    expect_tensors(f, want);
    // LayerNorm weights are 1 + noise and biases noise, so that a reference sees both.
    const auto w = f32_values(f.tensor("blk.1.layer_output_norm.weight"));
    const auto b = f32_values(f.tensor("token_embd_norm.bias"));
    double mw = 0, mb = 0, sb = 0;
    for (float x : w) mw += x / w.size();
    for (float x : b) mb += x / b.size(), sb += x * x / b.size();
    EXPECT_NEAR(mw, 1.0, 0.02);
    EXPECT_NEAR(mb, 0.0, 0.02);
    EXPECT_NEAR(std::sqrt(sb), 0.02, 0.008);
    bool all_one = true;
    for (float x : w) all_one = all_one && x == 1.0f;
    EXPECT_FALSE(all_one);

    // Explicit spec with mean pooling and three token types, in F32.
    const auto g = gguf::File::open(write(
        "arch=bert,embd=32,layers=1,heads=2,ff=64,vocab=100,ctx=64,token_types=3,pooling=mean", "bert2.gguf", F32));
    expect_u32(g, "bert.pooling_type", 1);
    expect_u32(g, "tokenizer.ggml.token_type_count", 3);
    EXPECT_EQ(g.tensor("token_types.weight").dims, (std::vector<int64_t>{32, 3}));
    EXPECT_EQ(g.tensor("position_embd.weight").dims, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(g.tensor("blk.0.attn_q.weight").type, F32);
}

// A real vocabulary replaces the placeholder: its size sets the embedding rows, and bert's token-type count is
// the shape's (not the vocab file's).
TEST(Synth, RealVocab) {
    const auto f = gguf::File::open(
        write("bert-tiny", "bert-bge.gguf", F16, test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-bert-bge.gguf")));
    EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "bert");
    EXPECT_EQ(f.tensor("token_embd.weight").dims, (std::vector<int64_t>{64, 30522}));
    expect_u32(f, "tokenizer.ggml.token_type_count", 2);
    const auto g = gguf::File::open(write("arch=phi3,embd=64,layers=1,heads=4,ff=96,tied=0", "phi3v.gguf", F16,
                                          test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf")));
    EXPECT_EQ(g.tensor("output.weight").dims, (std::vector<int64_t>{64, 32064}));
    expect_u32(g, "phi3.vocab_size", 32064);
}

TEST(Synth, Deterministic) {
    const auto a = test::read_file(write("moe-tiny", "d1.gguf", F16, "", 7));
    const auto b = test::read_file(write("moe-tiny", "d2.gguf", F16, "", 7));
    const auto c = test::read_file(write("moe-tiny", "d3.gguf", F16, "", 8));
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
}

TEST(Synth, ParamCountMatchesFile) {
    for (const char* spec : {"tiny", "moe-tiny", "bert-tiny",
                             "arch=phi3,embd=64,layers=2,heads=4,ff=96,tied=0,vocab=99,ctx=512,orig_ctx=64"}) {
        SynthOptions o;
        o.shape = synth_shape(spec);
        const SynthResult r = synth_model(o, tmp_dir() + "/p.gguf");
        const auto f = gguf::File::open(tmp_dir() + "/p.gguf");
        int64_t n = 0;
        for (const auto& t : f.tensors()) n += t.n_elements;
        EXPECT_EQ(r.n_params, n) << spec;
        EXPECT_EQ(synth_n_params(o.shape), n) << spec;
        EXPECT_GT(r.bytes, 0u);
    }
}

// The named shapes carry the real models' hyper-parameters.
TEST(Synth, NamedShapes) {
    struct Want {
        const char* name;
        const char* arch;
        int64_t embd, layers, heads, kv, head_dim, ff, vocab, ctx;
        float rope_base, eps;
        bool tied;
    };
    const Want wants[] = {
        {"smollm2-135m", "llama", 576, 30, 9, 3, 64, 1536, 49152, 8192, 1e5f, 1e-5f, true},
        {"llama3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 5e5f, 1e-5f, true},
        {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1e6f, 1e-6f, true},
        {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 32768, 1e6f, 1e-6f, true},
        {"gemma3-270m", "gemma3", 640, 18, 4, 1, 256, 2048, 262144, 32768, 1e6f, 1e-6f, true},
        {"gemma3-1b", "gemma3", 1152, 26, 4, 1, 256, 6912, 262144, 32768, 1e6f, 1e-6f, true},
        {"granite-3.3-2b", "granite", 2048, 40, 32, 8, 64, 8192, 49159, 131072, 1e7f, 1e-5f, true},
        {"phi3-mini", "phi3", 3072, 32, 32, 32, 96, 8192, 32064, 131072, 1e4f, 1e-5f, false},
        {"qwen3moe-a400m", "qwen3moe", 1024, 24, 16, 8, 64, 512, 49155, 131072, 1e6f, 1e-6f, true},
        {"moe-tiny", "qwen3moe", 64, 2, 4, 2, 16, 64, 256, 8192, 1e6f, 1e-6f, true},
        {"bge-small", "bert", 384, 12, 12, 12, 32, 1536, 30522, 512, 1e4f, 1e-12f, true},
        {"bert-tiny", "bert", 64, 2, 4, 4, 16, 128, 256, 128, 1e4f, 1e-12f, true},
    };
    for (const Want& w : wants) {
        const SynthShape s = synth_shape(w.name);
        EXPECT_EQ(s.name, w.name);
        EXPECT_EQ(s.arch, w.arch) << w.name;
        EXPECT_EQ(s.n_embd, w.embd) << w.name;
        EXPECT_EQ(s.n_layer, w.layers) << w.name;
        EXPECT_EQ(s.n_head, w.heads) << w.name;
        EXPECT_EQ(s.n_head_kv, w.kv) << w.name;
        EXPECT_EQ(s.head_dim, w.head_dim) << w.name;
        EXPECT_EQ(s.n_ff, w.ff) << w.name;
        EXPECT_EQ(s.n_vocab, w.vocab) << w.name;
        EXPECT_EQ(s.n_ctx_train, w.ctx) << w.name;
        EXPECT_FLOAT_EQ(s.rope_base, w.rope_base) << w.name;
        EXPECT_FLOAT_EQ(s.rms_eps, w.eps) << w.name;
        EXPECT_EQ(s.tied, w.tied) << w.name;
    }
    // Architecture-specific parameters.
    EXPECT_TRUE(synth_shape("llama3.2-1b").llama3_rope);
    EXPECT_EQ(synth_shape("gemma3-270m").sliding_window, 512);
    EXPECT_EQ(synth_shape("gemma3-1b").sliding_window, 512);
    const SynthShape g = synth_shape("granite-3.3-2b");
    EXPECT_FLOAT_EQ(g.embd_scale, 12.0f);
    EXPECT_FLOAT_EQ(g.residual_scale, 0.22f);
    EXPECT_FLOAT_EQ(g.attn_scale, 0.015625f);
    EXPECT_FLOAT_EQ(g.logit_scale, 8.0f);
    const SynthShape p = synth_shape("phi3-mini");
    EXPECT_EQ(p.n_ctx_orig, 4096);
    EXPECT_TRUE(p.longrope());
    EXPECT_NEAR(p.rope_attn_factor, 1.19024f, 1e-5);
    const SynthShape m = synth_shape("qwen3moe-a400m");
    EXPECT_EQ(m.n_expert, 32);
    EXPECT_EQ(m.n_expert_used, 8);
    EXPECT_EQ(m.n_ff_exp, 512);
    const SynthShape t = synth_shape("moe-tiny");
    EXPECT_EQ(t.n_expert, 8);
    EXPECT_EQ(t.n_expert_used, 2);
    EXPECT_EQ(t.n_ff_exp, 64);
    for (const char* b : {"bge-small", "bert-tiny"}) {
        EXPECT_EQ(synth_shape(b).n_token_types, 2) << b;
        EXPECT_EQ(synth_shape(b).pooling, 2) << b;
    }
    // Parameter counts of the real models (weights as llama.cpp's converter writes them; bge-small has no
    // pooler, which llama.cpp does not convert).
    EXPECT_EQ(synth_n_params(synth_shape("qwen3-0.6b")), 596049920);
    EXPECT_EQ(synth_n_params(synth_shape("qwen2.5-0.5b")), 494032768);
    EXPECT_EQ(synth_n_params(synth_shape("gemma3-270m")), 268098176);
    EXPECT_EQ(synth_n_params(synth_shape("gemma3-1b")), 999885952);
    EXPECT_EQ(synth_n_params(synth_shape("granite-3.3-2b")), 2533539840);
    EXPECT_EQ(synth_n_params(synth_shape("phi3-mini")), 3821079648);
    EXPECT_EQ(synth_n_params(synth_shape("qwen3moe-a400m")), 1334631424);
    EXPECT_EQ(synth_n_params(synth_shape("bge-small")), 33212160);
    EXPECT_EQ(synth_n_params(synth_shape("smollm2-135m")), 134515008);
    EXPECT_EQ(synth_n_params(synth_shape("llama3.2-1b")), 1235814432);
    EXPECT_EQ(synth_shape_names().size(), 14u);
}

void expect_error(const std::string& spec, const std::string& needle) {
    try {
        synth_shape(spec);
        ADD_FAILURE() << "no error for " << spec;
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(needle), std::string::npos) << spec << " -> " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

TEST(Synth, BadSpecs) {
    const std::string base = "embd=64,layers=2,heads=4,ff=128";
    expect_error("nonsense", "nonsense");
    expect_error("arch=mamba," + base, "unknown architecture 'mamba'");
    expect_error("arch=qwen3moe," + base + ",experts=4,experts_used=6", "experts_used 6");
    expect_error("arch=qwen3moe," + base + ",experts_used=2", "'experts' is required");
    expect_error("arch=qwen3moe," + base + ",experts=0,experts_used=0", "experts must be at least 1");
    expect_error("arch=qwen3," + base + ",head_dim=15", "head_dim 15 is odd");
    expect_error(base + ",kv_heads=3", "heads 4 is not a multiple of kv_heads 3");
    expect_error(base + ",experts=4", "'experts' applies to qwen3moe only");
    expect_error(base + ",window=16", "'window' applies to gemma3 only");
    expect_error("arch=gemma3," + base + ",window=0", "sliding window");
    expect_error("arch=qwen2," + base + ",embd_scale=2", "'embd_scale' applies to granite only");
    expect_error("arch=qwen3," + base + ",llama3_rope=1", "'llama3_rope' applies to llama only");
    expect_error("arch=bert,embd=64,layers=2,heads=4,ff=128,head_dim=8", "must equal embd 64");
    expect_error("arch=bert,embd=64,layers=2,heads=4,ff=128,pooling=max", "unknown pooling 'max'");
    expect_error("arch=bert,embd=64,layers=2,heads=4,ff=128,token_types=0", "token_types");
    expect_error(base + ",pooling=cls", "'pooling' applies to bert only");
    expect_error("arch=phi3," + base + ",ctx=100,orig_ctx=200", "orig_ctx 200 exceeds ctx 100");
    expect_error(base + ",colour=red", "unknown key 'colour'");
    expect_error(base + ",rope_base=abc", "'rope_base' must be a positive number");
    expect_error("embd=64,layers=2,heads=4", "'ff' is required");
}

// --- the hearth binary: --arch is optional, overrides an explicit shape's default, and must match a named one.


TEST(Synth, CliArchAndPooling) {
    const std::string out = tmp_dir() + "/cli.gguf";
    test::RunResult r = test::run_hearth("synth --shape moe-tiny -o " + out + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["arch"], "qwen3moe");
    EXPECT_EQ(j["n_vocab"], 256);
    EXPECT_EQ(j["n_params"].get<int64_t>(), synth_n_params(synth_shape("moe-tiny")));
    // --arch on an explicit shape without arch= sets it.
    r = test::run_hearth("synth --arch granite --shape embd=64,layers=1,heads=4,ff=128,vocab=256 -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(gguf::File::open(out).get_str("general.architecture"), "granite");
    // ... and must agree with a named shape or an explicit arch=.
    r = test::run_hearth("synth --arch llama --shape qwen3-0.6b -o " + out);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("qwen3"), std::string::npos) << r.err;
    r = test::run_hearth("synth --arch llama --shape arch=phi3,embd=64,layers=1,heads=4,ff=128,vocab=256 -o " + out);
    EXPECT_NE(r.code, 0);
    r = test::run_hearth("synth --arch qwen3moe --shape moe-tiny -o " + out);
    EXPECT_EQ(r.code, 0) << r.err;
    // --pooling for bert shapes only.
    r = test::run_hearth("synth --shape bert-tiny --pooling mean -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(gguf::File::open(out).get_u32("bert.pooling_type"), 1u);
    r = test::run_hearth("synth --shape tiny --pooling mean -o " + out);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("--pooling"), std::string::npos) << r.err;
    r = test::run_hearth("synth --shape bert-tiny --pooling max -o " + out);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("max"), std::string::npos) << r.err;
}

// --- each tiny model loads in hearth (and decoders decode). Fails until the architecture's loader exists.

class SynthLoad : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(SynthLoad, LoadsAndDecodes) {
    const auto [arch, spec] = GetParam();
    const std::string path = write(spec, std::string("load-") + arch + ".gguf", F32);
    std::unique_ptr<Model> m;
    try {
        m = Model::load(path);
    } catch (const Error& e) {
        FAIL() << arch << ": " << e.what();
    }
    const SynthShape s = synth_shape(spec);
    EXPECT_EQ(m->hp.arch, arch);
    EXPECT_EQ(m->hp.n_embd, s.n_embd);
    EXPECT_EQ(m->hp.n_layer, s.n_layer);
    EXPECT_EQ(m->hp.n_vocab, s.n_vocab);
    EXPECT_EQ(m->n_params(), synth_n_params(s));
    if (std::string(arch) == "bert") {
        EXPECT_FALSE(m->hp.causal);
        EXPECT_EQ(m->hp.n_token_types, 2);
        return;  // encoders are run by the embedding path, not Context::decode
    }
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    Context ctx(*m, cp);
    Batch b;
    const std::vector<int32_t> toks = {1, 17, 200, 33, 5};
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int32_t>(i), 0, true);
    const std::vector<float>& logits = ctx.decode(b);
    ASSERT_EQ(logits.size(), toks.size() * static_cast<size_t>(s.n_vocab));
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
    Batch next;
    next.add(42, static_cast<int32_t>(toks.size()), 0, true);
    const std::vector<float>& l2 = ctx.decode(next);
    ASSERT_EQ(l2.size(), static_cast<size_t>(s.n_vocab));
    for (float x : l2) ASSERT_TRUE(std::isfinite(x));
}

INSTANTIATE_TEST_SUITE_P(
    SynthArch, SynthLoad,
    ::testing::Values(
        std::make_pair("llama", "tiny"),
        std::make_pair("qwen2", "arch=qwen2,embd=64,layers=2,heads=4,kv_heads=2,ff=128,vocab=256"),
        std::make_pair("qwen3", "arch=qwen3,embd=64,layers=2,heads=4,kv_heads=2,head_dim=32,ff=128,vocab=256"),
        std::make_pair("qwen3moe", "moe-tiny"),
        std::make_pair("gemma3",
                       "arch=gemma3,embd=64,layers=2,heads=4,kv_heads=1,head_dim=32,ff=128,vocab=256,window=4"),
        std::make_pair("granite", "arch=granite,embd=64,layers=2,heads=4,kv_heads=2,ff=128,vocab=256"),
        std::make_pair("phi3", "arch=phi3,embd=64,layers=2,heads=4,ff=96,vocab=256,tied=0,ctx=512,orig_ctx=32"),
        std::make_pair("bert", "bert-tiny")),
    [](const auto& info) { return std::string(info.param.first); });

}  // namespace
}  // namespace hearth
