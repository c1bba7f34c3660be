#include "model/synth.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tokenizer/import.h"

namespace hearth {
namespace {

// What sets an architecture apart from the llama block, as far as the file is concerned. Everything generic
// (the metadata keys every decoder has, the tensor list) is written once from these flags.
struct ArchInfo {
    const char* name;
    bool encoder = false;     // bert: LayerNorm with biases, learned positions, token types, no output head
    bool qkv_bias = false;    // qwen2: attn_q/k/v.bias
    bool qk_norm = false;     // qwen3, qwen3moe, gemma3: attn_q_norm / attn_k_norm [head_dim]
    bool post_norms = false;  // gemma3: post_attention_norm and post_ffw_norm
    bool fused = false;       // phi3: attn_qkv = [q | k | v], ffn_up = [gate | up]
    bool moe = false;         // qwen3moe: router + 3-D expert tensors
    bool sliding = false;     // gemma3: attention.sliding_window (required by llama.cpp's loader)
    bool scales = false;      // granite: embedding / residual / attention / logit multipliers
    bool longrope = false;    // phi3: rope.scaling.original_context_length (+ factors when scaled)
};

constexpr ArchInfo kArchs[] = {
    {.name = "llama"},
    {.name = "qwen2", .qkv_bias = true},
    {.name = "qwen3", .qk_norm = true},
    {.name = "qwen3moe", .qk_norm = true, .moe = true},
    {.name = "gemma3", .qk_norm = true, .post_norms = true, .sliding = true},
    {.name = "granite", .scales = true},
    {.name = "phi3", .fused = true, .longrope = true},
    {.name = "bert", .encoder = true},
};

const ArchInfo* find_arch(const std::string& name) {
    for (const ArchInfo& a : kArchs)
        if (name == a.name) return &a;
    return nullptr;
}

const ArchInfo& arch_info(const std::string& name, const std::string& spec) {
    if (const ArchInfo* a = find_arch(name)) return *a;
    std::string list;
    for (const ArchInfo& a : kArchs) list += (list.empty() ? "" : ", ") + std::string(a.name);
    fail("shape '{}': unknown architecture '{}' ({})", spec, name, list);
}

// phi3's attention factor for a context extended from `orig` to `ctx` (Phi-3's longrope: the convert script's
// sqrt(1 + log(scale) / log(original_max_position_embeddings))).
float longrope_attn_factor(int64_t ctx, int64_t orig) {
    if (orig <= 0 || ctx <= orig) return 1.0f;
    return static_cast<float>(std::sqrt(1.0 + std::log(static_cast<double>(ctx) / static_cast<double>(orig)) /
                                                  std::log(static_cast<double>(orig))));
}

struct Named {
    const char* name;
    SynthShape (*make)();
};

// Real hyper-parameters of the models the shapes are named after (their config.json).
const Named kNamed[] = {
    {"smollm2-135m", [] {
         SynthShape s;
         s.n_embd = 576, s.n_layer = 30, s.n_head = 9, s.n_head_kv = 3, s.n_ff = 1536, s.n_vocab = 49152;
         s.rope_base = 100000.0f;
         return s;
     }},
    {"smollm2-360m", [] {
         SynthShape s;
         s.n_embd = 960, s.n_layer = 32, s.n_head = 15, s.n_head_kv = 5, s.n_ff = 2560, s.n_vocab = 49152;
         s.rope_base = 100000.0f;
         return s;
     }},
    {"llama3.2-1b", [] {
         SynthShape s;
         s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_vocab = 128256;
         s.rope_base = 500000.0f, s.llama3_rope = true, s.n_ctx_train = 131072;
         return s;
     }},
    {"qwen3-0.6b", [] {
         SynthShape s;
         s.arch = "qwen3";
         s.n_embd = 1024, s.n_layer = 28, s.n_head = 16, s.n_head_kv = 8, s.head_dim = 128, s.n_ff = 3072;
         s.n_vocab = 151936, s.rope_base = 1e6f, s.rms_eps = 1e-6f, s.n_ctx_train = 40960;
         return s;
     }},
    {"qwen2.5-0.5b", [] {
         SynthShape s;
         s.arch = "qwen2";
         s.n_embd = 896, s.n_layer = 24, s.n_head = 14, s.n_head_kv = 2, s.head_dim = 64, s.n_ff = 4864;
         s.n_vocab = 151936, s.rope_base = 1e6f, s.rms_eps = 1e-6f, s.n_ctx_train = 32768;
         return s;
     }},
    {"gemma3-270m", [] {
         SynthShape s;
         s.arch = "gemma3";
         s.n_embd = 640, s.n_layer = 18, s.n_head = 4, s.n_head_kv = 1, s.head_dim = 256, s.n_ff = 2048;
         s.n_vocab = 262144, s.rope_base = 1e6f, s.rms_eps = 1e-6f, s.n_ctx_train = 32768, s.sliding_window = 512;
         return s;
     }},
    {"gemma3-1b", [] {
         SynthShape s;
         s.arch = "gemma3";
         s.n_embd = 1152, s.n_layer = 26, s.n_head = 4, s.n_head_kv = 1, s.head_dim = 256, s.n_ff = 6912;
         s.n_vocab = 262144, s.rope_base = 1e6f, s.rms_eps = 1e-6f, s.n_ctx_train = 32768, s.sliding_window = 512;
         return s;
     }},
    {"granite-3.3-2b", [] {
         SynthShape s;
         s.arch = "granite";
         s.n_embd = 2048, s.n_layer = 40, s.n_head = 32, s.n_head_kv = 8, s.head_dim = 64, s.n_ff = 8192;
         s.n_vocab = 49159, s.rope_base = 1e7f, s.rms_eps = 1e-5f, s.n_ctx_train = 131072;
         s.embd_scale = 12.0f, s.residual_scale = 0.22f, s.attn_scale = 0.015625f, s.logit_scale = 8.0f;
         return s;
     }},
    {"phi3-mini", [] {  // Phi-3.5-mini-instruct: 128k context by longrope from 4k
         SynthShape s;
         s.arch = "phi3";
         s.n_embd = 3072, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 32, s.head_dim = 96, s.n_ff = 8192;
         s.n_vocab = 32064, s.tied = false, s.rope_base = 10000.0f, s.rms_eps = 1e-5f, s.n_ctx_train = 131072;
         s.n_ctx_orig = 4096, s.rope_attn_factor = longrope_attn_factor(131072, 4096);  // 1.19024
         return s;
     }},
    // IBM's granite-3.1-1b-a400m (a small MoE) expressed in the qwen3moe architecture: hearth's MoE path is
    // qwen3moe's, and no small qwen3moe exists (the smallest, Qwen3-30B-A3B, is far beyond this machine).
    {"qwen3moe-a400m", [] {
         SynthShape s;
         s.arch = "qwen3moe";
         s.n_embd = 1024, s.n_layer = 24, s.n_head = 16, s.n_head_kv = 8, s.head_dim = 64, s.n_ff = 512;
         s.n_vocab = 49155, s.rope_base = 1e6f, s.rms_eps = 1e-6f, s.n_ctx_train = 131072;
         s.n_expert = 32, s.n_expert_used = 8, s.n_ff_exp = 512;
         return s;
     }},
    {"bge-small", [] {  // BAAI/bge-small-en-v1.5
         SynthShape s;
         s.arch = "bert";
         s.n_embd = 384, s.n_layer = 12, s.n_head = 12, s.n_head_kv = 12, s.n_ff = 1536, s.n_vocab = 30522;
         s.n_ctx_train = 512, s.n_token_types = 2, s.rms_eps = 1e-12f, s.pooling = 2;
         return s;
     }},
    {"tiny", [] {
         SynthShape s;
         s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 128, s.n_vocab = 256;
         return s;
     }},
    {"moe-tiny", [] {
         SynthShape s;
         s.arch = "qwen3moe";
         s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 16, s.n_ff = 64, s.n_vocab = 256;
         s.rope_base = 1e6f, s.rms_eps = 1e-6f;
         s.n_expert = 8, s.n_expert_used = 2, s.n_ff_exp = 64;
         return s;
     }},
    {"bert-tiny", [] {
         SynthShape s;
         s.arch = "bert";
         s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 4, s.n_ff = 128, s.n_vocab = 256;
         s.n_ctx_train = 128, s.n_token_types = 2, s.rms_eps = 1e-12f, s.pooling = 2;
         return s;
     }},
};

// Defaults of an explicit spec that depend on the architecture (a file llama.cpp would refuse otherwise).
void arch_defaults(SynthShape& s, const ArchInfo& a) {
    if (a.encoder) s.n_ctx_train = 512, s.n_token_types = 2, s.rms_eps = 1e-12f, s.pooling = 2;
    if (a.sliding) s.sliding_window = 512;
    if (a.scales) s.embd_scale = 12.0f, s.residual_scale = 0.22f, s.logit_scale = 8.0f;  // granite 3.x
}

SynthShape parse_explicit(const std::string& spec) {
    std::map<std::string, std::string> kv;
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
        const auto eq = item.find('=');
        if (eq == std::string::npos) fail("shape '{}': '{}' is not key=value", spec, item);
        kv[item.substr(0, eq)] = item.substr(eq + 1);
    }
    SynthShape s;
    if (auto it = kv.find("arch"); it != kv.end()) {
        s.arch = it->second;
        kv.erase(it);
    }
    const ArchInfo& a = arch_info(s.arch, spec);
    arch_defaults(s, a);
    // A key that only one kind of architecture has: refused elsewhere rather than silently ignored.
    auto only = [&](const char* key, bool allowed, const char* which) {
        if (!allowed && kv.count(key)) fail("shape '{}': '{}' applies to {} only, not {}", spec, key, which, s.arch);
    };
    only("experts", a.moe, "qwen3moe");
    only("experts_used", a.moe, "qwen3moe");
    only("ff_exp", a.moe, "qwen3moe");
    only("window", a.sliding, "gemma3");
    for (const char* k : {"embd_scale", "residual_scale", "attn_scale", "logit_scale"}) only(k, a.scales, "granite");
    only("orig_ctx", a.longrope, "phi3");
    only("token_types", a.encoder, "bert");
    only("pooling", a.encoder, "bert");
    only("llama3_rope", s.arch == "llama", "llama");
    for (const char* k : {"kv_heads", "rope_base", "tied"}) only(k, !a.encoder, "decoders");

    auto num = [&](const char* key, int64_t def, bool required) -> int64_t {
        auto it = kv.find(key);
        if (it == kv.end()) {
            if (required) fail("shape '{}': '{}' is required", spec, key);
            return def;
        }
        try {
            size_t used = 0;
            const long long v = std::stoll(it->second, &used);
            if (used != it->second.size() || v < 0) throw std::invalid_argument("x");
            kv.erase(it);
            return v;
        } catch (const std::exception&) {
            fail("shape '{}': '{}' must be a non-negative integer", spec, key);
        }
    };
    auto real = [&](const char* key, float def) -> float {
        auto it = kv.find(key);
        if (it == kv.end()) return def;
        try {
            size_t used = 0;
            const double v = std::stod(it->second, &used);
            if (used != it->second.size() || !(v > 0) || !std::isfinite(v)) throw std::invalid_argument("x");
            kv.erase(it);
            return static_cast<float>(v);
        } catch (const std::exception&) {
            fail("shape '{}': '{}' must be a positive number", spec, key);
        }
    };
    s.n_embd = num("embd", 0, true);
    s.n_layer = num("layers", 0, true);
    s.n_head = num("heads", 0, true);
    s.n_head_kv = num("kv_heads", s.n_head, false);
    s.n_vocab = num("vocab", 0, false);
    s.head_dim = num("head_dim", 0, false);
    s.tied = num("tied", 1, false) != 0;
    s.llama3_rope = num("llama3_rope", 0, false) != 0;
    s.rope_base = real("rope_base", s.rope_base);
    s.rms_eps = real("eps", s.rms_eps);
    s.n_ctx_train = num("ctx", s.n_ctx_train, false);
    s.n_expert = num("experts", 0, a.moe);
    s.n_expert_used = num("experts_used", 0, a.moe);
    // An MoE's feed_forward_length is its expert width when only one of the two is given.
    const bool has_ff = kv.count("ff") != 0, has_ff_exp = kv.count("ff_exp") != 0;
    s.n_ff_exp = num("ff_exp", 0, a.moe && !has_ff);
    s.n_ff = num("ff", s.n_ff_exp, !(a.moe && has_ff_exp));
    if (a.moe && !has_ff_exp) s.n_ff_exp = s.n_ff;
    s.sliding_window = num("window", s.sliding_window, false);
    s.embd_scale = real("embd_scale", s.embd_scale);
    s.residual_scale = real("residual_scale", s.residual_scale);
    const bool has_attn_scale = kv.count("attn_scale") != 0;
    s.attn_scale = real("attn_scale", s.attn_scale);
    s.logit_scale = real("logit_scale", s.logit_scale);
    s.n_ctx_orig = num("orig_ctx", 0, false);
    s.n_token_types = num("token_types", s.n_token_types, false);
    if (auto it = kv.find("pooling"); it != kv.end()) {
        s.pooling = synth_pooling(it->second);
        kv.erase(it);
    }
    if (!kv.empty()) fail("shape '{}': unknown key '{}'", spec, kv.begin()->first);
    if (a.encoder) s.n_head_kv = s.n_head;
    if (s.head_dim == 0 && s.n_head > 0) s.head_dim = s.n_embd / s.n_head;
    // Granite scales attention by 1/head_dim (attention_multiplier 0.015625 at head_dim 64).
    if (a.scales && !has_attn_scale && s.head_dim > 0) s.attn_scale = 1.0f / static_cast<float>(s.head_dim);
    if (a.longrope) s.rope_attn_factor = longrope_attn_factor(s.n_ctx_train, s.n_ctx_orig);
    return s;
}

void validate(const SynthShape& s, const std::string& spec) {
    const ArchInfo& a = arch_info(s.arch, spec);
    if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 || s.head_dim <= 0)
        fail("shape '{}': embd, layers, heads, kv_heads, ff and head_dim must be positive", spec);
    if (s.n_head % s.n_head_kv != 0)
        fail("shape '{}': heads {} is not a multiple of kv_heads {}", spec, s.n_head, s.n_head_kv);
    if (s.n_ctx_train <= 0) fail("shape '{}': ctx must be positive", spec);
    if (a.encoder) {
        // bert's projections are [embd, embd]: the heads must split embd exactly.
        if (s.q_dim() != s.n_embd)
            fail("shape '{}': heads {} x head_dim {} must equal embd {} for bert", spec, s.n_head, s.head_dim,
                 s.n_embd);
        if (s.n_token_types < 1) fail("shape '{}': token_types must be at least 1", spec);
        if (s.pooling < 0 || s.pooling > 3) fail("shape '{}': pooling {} is not 0..3", spec, s.pooling);
    } else if (s.head_dim % 2 != 0) {
        fail("shape '{}': head_dim {} is odd (rope rotates pairs of dimensions)", spec, s.head_dim);
    }
    if (a.moe) {
        if (s.n_expert < 1) fail("shape '{}': experts must be at least 1 for {}", spec, s.arch);
        if (s.n_expert_used < 1 || s.n_expert_used > s.n_expert)
            fail("shape '{}': experts_used {} must be between 1 and experts {}", spec, s.n_expert_used, s.n_expert);
        if (s.n_ff_exp <= 0) fail("shape '{}': ff_exp must be positive", spec);
    } else if (s.n_expert != 0 || s.n_expert_used != 0 || s.n_ff_exp != 0) {
        fail("shape '{}': architecture {} has no experts", spec, s.arch);
    }
    if (a.sliding && s.sliding_window <= 0) fail("shape '{}': {} needs a sliding window (window=N)", spec, s.arch);
    if (!a.sliding && s.sliding_window != 0) fail("shape '{}': {} has no sliding window", spec, s.arch);
    if (a.longrope && s.n_ctx_orig > s.n_ctx_train)
        fail("shape '{}': orig_ctx {} exceeds ctx {}", spec, s.n_ctx_orig, s.n_ctx_train);
    if (!a.encoder && s.pooling != 0) fail("shape '{}': pooling applies to bert only", spec);
}

// How a tensor's values are made.
enum class Init {
    Normal,         // normal(0, stddev)
    Ones,           // RMSNorm weights
    OnePlusNormal,  // bert LayerNorm weights: 1 + normal(0, stddev), so that a reference sees them
    Given,          // `values` (rope frequency factors)
};

struct TensorSpec {
    std::string name;
    std::vector<int64_t> dims;
    Init init = Init::Normal;
    bool f32 = false;  // F32 whatever the chosen type (besides 1-D and non-Normal tensors, which always are)
    std::vector<float> values;
    bool is_f32() const { return f32 || init != Init::Normal || dims.size() == 1; }
};

// Llama 3.1+ frequency scaling (factor 32, low 1, high 4, original context 8192) as per-dimension divisors.
std::vector<float> llama3_rope_freqs(const SynthShape& s) {
    const int64_t half = s.head_dim / 2;
    std::vector<float> f(static_cast<size_t>(half));
    const double factor = 32, low = 1, high = 4, orig = 8192;
    for (int64_t i = 0; i < half; ++i) {
        const double freq = std::pow(s.rope_base, -2.0 * i / s.head_dim);
        const double wavelen = 2 * M_PI / freq;
        if (wavelen < orig / high) f[i] = 1.0f;
        else if (wavelen > orig / low) f[i] = static_cast<float>(factor);
        else {
            const double smooth = (orig / wavelen - low) / (high - low);
            f[i] = static_cast<float>(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
    return f;
}

// Plausible longrope divisors, increasing from 1 with the dimension (low frequencies stretched most), as in
// Phi-3.5's config: short 1.0 .. 1.2, long 1.0 .. 40 (geometric).
std::vector<float> longrope_factors(int64_t half, bool long_set) {
    std::vector<float> f(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        const double t = half > 1 ? static_cast<double>(i) / static_cast<double>(half - 1) : 0.0;
        f[i] = static_cast<float>(long_set ? std::pow(40.0, t) : 1.0 + 0.2 * t);
    }
    return f;
}

// Every tensor of the shape, in the order written, with llama.cpp's names and GGUF dims (innermost first).
std::vector<TensorSpec> tensor_list(const SynthShape& s) {
    const ArchInfo& a = arch_info(s.arch, s.name);
    const int64_t e = s.n_embd, qd = s.q_dim(), kvd = s.kv_dim();
    std::vector<TensorSpec> ts;
    auto add = [&](std::string name, std::vector<int64_t> dims, Init init = Init::Normal, bool f32 = false) {
        ts.push_back({std::move(name), std::move(dims), init, f32, {}});
    };
    if (s.llama3_rope) ts.push_back({"rope_freqs.weight", {s.head_dim / 2}, Init::Given, true, llama3_rope_freqs(s)});
    add("token_embd.weight", {e, s.n_vocab});
    if (a.encoder) {
        add("token_types.weight", {e, s.n_token_types});
        add("position_embd.weight", {e, s.n_ctx_train});
        add("token_embd_norm.weight", {e}, Init::OnePlusNormal);
        add("token_embd_norm.bias", {e});
    } else {
        add("output_norm.weight", {e}, Init::Ones);
        if (!s.tied) add("output.weight", {e, s.n_vocab});
    }
    if (s.longrope()) {
        ts.push_back({"rope_factors_long.weight", {s.head_dim / 2}, Init::Given, true,
                      longrope_factors(s.head_dim / 2, true)});
        ts.push_back({"rope_factors_short.weight", {s.head_dim / 2}, Init::Given, true,
                      longrope_factors(s.head_dim / 2, false)});
    }
    for (int64_t i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        if (a.encoder) {
            for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
                add(p + m + ".weight", {e, e});
                add(p + m + ".bias", {e});
            }
            add(p + "attn_output_norm.weight", {e}, Init::OnePlusNormal);
            add(p + "attn_output_norm.bias", {e});
            add(p + "ffn_up.weight", {e, s.n_ff});
            add(p + "ffn_up.bias", {s.n_ff});
            add(p + "ffn_down.weight", {s.n_ff, e});
            add(p + "ffn_down.bias", {e});
            add(p + "layer_output_norm.weight", {e}, Init::OnePlusNormal);
            add(p + "layer_output_norm.bias", {e});
            continue;
        }
        add(p + "attn_norm.weight", {e}, Init::Ones);
        if (a.fused) {
            add(p + "attn_qkv.weight", {e, qd + 2 * kvd});
        } else {
            add(p + "attn_q.weight", {e, qd});
            if (a.qkv_bias) add(p + "attn_q.bias", {qd});
            add(p + "attn_k.weight", {e, kvd});
            if (a.qkv_bias) add(p + "attn_k.bias", {kvd});
            add(p + "attn_v.weight", {e, kvd});
            if (a.qkv_bias) add(p + "attn_v.bias", {kvd});
        }
        if (a.qk_norm) {
            add(p + "attn_q_norm.weight", {s.head_dim}, Init::Ones);
            add(p + "attn_k_norm.weight", {s.head_dim}, Init::Ones);
        }
        add(p + "attn_output.weight", {qd, e});
        if (a.post_norms) add(p + "post_attention_norm.weight", {e}, Init::Ones);
        add(p + "ffn_norm.weight", {e}, Init::Ones);
        if (a.moe) {
            // The router stays F32, as llama.cpp's converter keeps it.
            add(p + "ffn_gate_inp.weight", {e, s.n_expert}, Init::Normal, true);
            add(p + "ffn_gate_exps.weight", {e, s.n_ff_exp, s.n_expert});
            add(p + "ffn_up_exps.weight", {e, s.n_ff_exp, s.n_expert});
            add(p + "ffn_down_exps.weight", {s.n_ff_exp, e, s.n_expert});
        } else if (a.fused) {
            add(p + "ffn_up.weight", {e, 2 * s.n_ff});
            add(p + "ffn_down.weight", {s.n_ff, e});
        } else {
            add(p + "ffn_gate.weight", {e, s.n_ff});
            add(p + "ffn_up.weight", {e, s.n_ff});
            add(p + "ffn_down.weight", {s.n_ff, e});
        }
        if (a.post_norms) add(p + "post_ffw_norm.weight", {e}, Init::Ones);
    }
    return ts;
}

int64_t n_elements(const TensorSpec& t) {
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    return n;
}

}  // namespace

std::vector<std::string> synth_shape_names() {
    std::vector<std::string> names;
    for (const Named& n : kNamed) names.emplace_back(n.name);
    return names;
}

int synth_pooling(const std::string& name) {
    if (name == "none") return 0;
    if (name == "mean") return 1;
    if (name == "cls") return 2;
    if (name == "last") return 3;
    fail("unknown pooling '{}' (none, mean, cls, last)", name);
}

SynthShape synth_shape(const std::string& spec) {
    SynthShape s;
    bool named = false;
    for (const Named& n : kNamed) {
        if (spec == n.name) {
            s = n.make();
            named = true;
            break;
        }
    }
    if (!named) {
        if (spec.find('=') == std::string::npos) {
            std::string list;
            for (const Named& n : kNamed) list += std::string(n.name) + ", ";
            fail("unknown shape '{}' ({}or embd=..,layers=..,heads=..,ff=..[,arch=..])", spec, list);
        }
        s = parse_explicit(spec);
    }
    s.name = spec;
    if (s.head_dim == 0 && s.n_head > 0) s.head_dim = s.n_embd / s.n_head;
    validate(s, spec);
    return s;
}

int64_t synth_n_params(const SynthShape& shape) {
    int64_t n = 0;
    for (const TensorSpec& t : tensor_list(shape)) n += n_elements(t);
    return n;
}

SynthResult synth_model(const SynthOptions& opt, const std::string& out,
                        const std::function<void(int, int)>& progress) {
    SynthShape s = opt.shape;
    if (opt.type != DType::F32 && opt.type != DType::F16 && opt.type != DType::BF16)
        fail("synth writes F32, F16 or BF16 (quantize afterwards with `hearth quantize`)");
    validate(s, s.name);
    const ArchInfo& a = arch_info(s.arch, s.name);
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::str(s.arch));
    w.set("general.name", gguf::Value::str("hearth-synth " + s.name));
    w.set("general.alignment", gguf::Value::u32(32));
    if (!opt.vocab_path.empty()) {
        const tok::ImportedTokenizer t = tok::import_tokenizer(opt.vocab_path, w);
        // A named real shape whose vocabulary differs from the tokenizer's is worth a note; the test shapes'
        // placeholder size (tiny, moe-tiny, bert-tiny) is not.
        const bool test_shape = s.name.size() >= 4 && s.name.compare(s.name.size() - 4, 4, "tiny") == 0;
        if (s.n_vocab != 0 && s.n_vocab != t.n_tokens && !s.name.empty() && s.name.find('=') == std::string::npos &&
            !test_shape)
            std::fprintf(stderr, "note: shape %s has vocab %lld; the tokenizer has %lld tokens, which is used\n",
                         s.name.c_str(), static_cast<long long>(s.n_vocab), static_cast<long long>(t.n_tokens));
        s.n_vocab = t.n_tokens;
    } else {
        if (s.n_vocab < 4) fail("synth: no --vocab given and the shape names no vocab size");
        std::vector<std::string> toks;
        std::vector<int32_t> types;
        for (int64_t i = 0; i < s.n_vocab; ++i) {
            toks.push_back("<" + std::to_string(i) + ">");
            types.push_back(1);
        }
        w.set("tokenizer.ggml.model", gguf::Value::str("none"));
        w.set("tokenizer.ggml.tokens", gguf::Value::str_array(toks));
        w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    }
    // The shape's, replacing a vocab file's (llama.cpp reads the token-type count from the tokenizer keys).
    if (a.encoder) w.set("tokenizer.ggml.token_type_count", gguf::Value::u32(static_cast<uint32_t>(s.n_token_types)));

    auto u32 = [](int64_t v) { return gguf::Value::u32(static_cast<uint32_t>(v)); };
    const std::string k = s.arch + ".";
    w.set(k + "context_length", u32(s.n_ctx_train));
    w.set(k + "embedding_length", u32(s.n_embd));
    w.set(k + "block_count", u32(s.n_layer));
    w.set(k + "feed_forward_length", u32(s.n_ff));
    w.set(k + "attention.head_count", u32(s.n_head));
    if (a.encoder) {
        w.set(k + "attention.layer_norm_epsilon", gguf::Value::f32(s.rms_eps));
        w.set(k + "attention.causal", gguf::Value::boolean(false));
        w.set(k + "pooling_type", u32(s.pooling));
    } else {
        w.set(k + "attention.head_count_kv", u32(s.n_head_kv));
        w.set(k + "attention.key_length", u32(s.head_dim));
        w.set(k + "attention.value_length", u32(s.head_dim));
        w.set(k + "rope.dimension_count", u32(s.head_dim));
        w.set(k + "rope.freq_base", gguf::Value::f32(s.rope_base));
        w.set(k + "attention.layer_norm_rms_epsilon", gguf::Value::f32(s.rms_eps));
        w.set(k + "vocab_size", u32(s.n_vocab));
    }
    if (a.moe) {
        w.set(k + "expert_count", u32(s.n_expert));
        w.set(k + "expert_used_count", u32(s.n_expert_used));
        w.set(k + "expert_feed_forward_length", u32(s.n_ff_exp));
    }
    if (a.sliding) w.set(k + "attention.sliding_window", u32(s.sliding_window));
    if (a.scales) {
        w.set(k + "embedding_scale", gguf::Value::f32(s.embd_scale));
        w.set(k + "residual_scale", gguf::Value::f32(s.residual_scale));
        w.set(k + "attention.scale", gguf::Value::f32(s.attn_scale));
        w.set(k + "logit_scale", gguf::Value::f32(s.logit_scale));
    }
    if (a.longrope) {
        // As llama.cpp's converter: the original context always, the attention factor only when scaled.
        w.set(k + "rope.scaling.original_context_length", u32(s.n_ctx_orig > 0 ? s.n_ctx_orig : s.n_ctx_train));
        if (s.longrope()) w.set(k + "rope.scaling.attn_factor", gguf::Value::f32(s.rope_attn_factor));
    }
    w.set("general.file_type", gguf::Value::u32(opt.type == DType::F32 ? 0 : opt.type == DType::F16 ? 1 : 32));

    const std::vector<TensorSpec> ts = tensor_list(s);
    std::vector<std::vector<uint8_t>> data(ts.size());
    SynthResult res;
    res.n_vocab = s.n_vocab;
    const int n = static_cast<int>(ts.size());
    uint64_t seed_index = 0;  // counts random tensors only, so that llama files stay as they were
    for (int i = 0; i < n; ++i) {
        if (progress) progress(i, n);
        const TensorSpec& t = ts[static_cast<size_t>(i)];
        const int64_t count = n_elements(t);
        res.n_params += count;
        auto& buf = data[static_cast<size_t>(i)];
        if (t.init == Init::Given) {
            buf.resize(t.values.size() * sizeof(float));
            std::memcpy(buf.data(), t.values.data(), buf.size());
            w.add_tensor(t.name, DType::F32, t.dims, buf.data(), buf.size());
            continue;
        }
        const uint64_t ti = seed_index++;
        const DType type = t.is_f32() ? DType::F32 : opt.type;
        const int64_t cols = t.dims[0], rows = count / cols;
        buf.resize(row_bytes(type, cols) * static_cast<size_t>(rows));
#pragma omp parallel
        {
            std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                // One generator per row, seeded from (seed, tensor, row): the file does not depend on threads.
                std::mt19937_64 rng(opt.seed * 0x9E3779B97F4A7C15ull + ti * 1000003ull + static_cast<uint64_t>(r));
                const float base = t.init == Init::OnePlusNormal ? 1.0f : 0.0f;
                for (int64_t c = 0; c < cols; c += 2) {
                    if (t.init == Init::Ones) {
                        row[c] = 1.0f;
                        if (c + 1 < cols) row[c + 1] = 1.0f;
                        continue;
                    }
                    // Box-Muller from raw 53-bit uniforms (std::normal_distribution differs between libraries).
                    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
                    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
                    const double rad = std::sqrt(-2.0 * std::log(u1));
                    row[c] = base + static_cast<float>(opt.stddev * rad * std::cos(2 * M_PI * u2));
                    if (c + 1 < cols)
                        row[c + 1] = base + static_cast<float>(opt.stddev * rad * std::sin(2 * M_PI * u2));
                }
                kernels::quantize_row(type, row.data(), buf.data() + r * row_bytes(type, cols), cols);
            }
        }
        w.add_tensor(t.name, type, t.dims, buf.data(), buf.size());
    }
    if (progress) progress(n, n);
    w.write(out);
    for (const auto& d : data) res.bytes += d.size();
    return res;
}

}  // namespace hearth
