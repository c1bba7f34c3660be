#include "model/synth.h"

#include <omp.h>

#include <cmath>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tokenizer/import.h"

namespace hearth {

SynthShape synth_shape(const std::string& spec) {
    SynthShape s;
    s.name = spec;
    if (spec == "smollm2-135m") {
        s.n_embd = 576, s.n_layer = 30, s.n_head = 9, s.n_head_kv = 3, s.n_ff = 1536, s.n_vocab = 49152;
        s.rope_base = 100000.0f;
    } else if (spec == "smollm2-360m") {
        s.n_embd = 960, s.n_layer = 32, s.n_head = 15, s.n_head_kv = 5, s.n_ff = 2560, s.n_vocab = 49152;
        s.rope_base = 100000.0f;
    } else if (spec == "llama3.2-1b") {
        s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_vocab = 128256;
        s.rope_base = 500000.0f, s.llama3_rope = true, s.n_ctx_train = 131072;
    } else if (spec == "tiny") {
        s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 128, s.n_vocab = 256;
    } else if (spec.find('=') != std::string::npos) {
        std::map<std::string, std::string> kv;
        std::stringstream ss(spec);
        std::string item;
        while (std::getline(ss, item, ',')) {
            const auto eq = item.find('=');
            if (eq == std::string::npos) fail("shape '{}': '{}' is not key=value", spec, item);
            kv[item.substr(0, eq)] = item.substr(eq + 1);
        }
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
        s.n_embd = num("embd", 0, true);
        s.n_layer = num("layers", 0, true);
        s.n_head = num("heads", 0, true);
        s.n_head_kv = num("kv_heads", s.n_head, false);
        s.n_ff = num("ff", 0, true);
        s.n_vocab = num("vocab", 0, false);
        s.head_dim = num("head_dim", 0, false);
        s.tied = num("tied", 1, false) != 0;
        s.llama3_rope = num("llama3_rope", 0, false) != 0;
        s.rope_base = static_cast<float>(num("rope_base", 10000, false));
        if (!kv.empty()) fail("shape '{}': unknown key '{}'", spec, kv.begin()->first);
    } else {
        fail("unknown shape '{}' (smollm2-135m, smollm2-360m, llama3.2-1b, tiny, or embd=..,layers=..,heads=..,ff=..)",
             spec);
    }
    if (s.head_dim == 0 && s.n_head > 0) s.head_dim = s.n_embd / s.n_head;
    if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 || s.head_dim <= 0 ||
        s.n_head % s.n_head_kv != 0 || s.head_dim % 2 != 0)
        fail("shape '{}': inconsistent dimensions", spec);
    return s;
}

size_t synth_model(const SynthOptions& opt, const std::string& out,
                   const std::function<void(int, int)>& progress) {
    SynthShape s = opt.shape;
    if (opt.type != DType::F32 && opt.type != DType::F16 && opt.type != DType::BF16)
        fail("synth writes F32, F16 or BF16 (quantize afterwards with `hearth quantize`)");
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::str("llama"));
    w.set("general.name", gguf::Value::str("hearth-synth " + s.name));
    w.set("general.alignment", gguf::Value::u32(32));
    if (!opt.vocab_path.empty()) {
        const tok::ImportedTokenizer t = tok::import_tokenizer(opt.vocab_path, w);
        if (s.n_vocab != 0 && s.n_vocab != t.n_tokens && !s.name.empty() && s.name.find('=') == std::string::npos)
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
    const std::string a = "llama.";
    w.set(a + "context_length", gguf::Value::u32(static_cast<uint32_t>(s.n_ctx_train)));
    w.set(a + "embedding_length", gguf::Value::u32(static_cast<uint32_t>(s.n_embd)));
    w.set(a + "block_count", gguf::Value::u32(static_cast<uint32_t>(s.n_layer)));
    w.set(a + "feed_forward_length", gguf::Value::u32(static_cast<uint32_t>(s.n_ff)));
    w.set(a + "attention.head_count", gguf::Value::u32(static_cast<uint32_t>(s.n_head)));
    w.set(a + "attention.head_count_kv", gguf::Value::u32(static_cast<uint32_t>(s.n_head_kv)));
    w.set(a + "attention.key_length", gguf::Value::u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + "attention.value_length", gguf::Value::u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + "rope.dimension_count", gguf::Value::u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + "rope.freq_base", gguf::Value::f32(s.rope_base));
    w.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::f32(s.rms_eps));
    w.set(a + "vocab_size", gguf::Value::u32(static_cast<uint32_t>(s.n_vocab)));
    w.set("general.file_type", gguf::Value::u32(opt.type == DType::F32 ? 0 : opt.type == DType::F16 ? 1 : 32));

    struct T {
        std::string name;
        std::vector<int64_t> dims;
        bool norm;
    };
    std::vector<T> ts;
    const int64_t qd = s.n_head * s.head_dim, kvd = s.n_head_kv * s.head_dim;
    ts.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}, false});
    ts.push_back({"output_norm.weight", {s.n_embd}, true});
    if (!s.tied) ts.push_back({"output.weight", {s.n_embd, s.n_vocab}, false});
    for (int64_t i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        ts.push_back({p + "attn_norm.weight", {s.n_embd}, true});
        ts.push_back({p + "attn_q.weight", {s.n_embd, qd}, false});
        ts.push_back({p + "attn_k.weight", {s.n_embd, kvd}, false});
        ts.push_back({p + "attn_v.weight", {s.n_embd, kvd}, false});
        ts.push_back({p + "attn_output.weight", {qd, s.n_embd}, false});
        ts.push_back({p + "ffn_norm.weight", {s.n_embd}, true});
        ts.push_back({p + "ffn_gate.weight", {s.n_embd, s.n_ff}, false});
        ts.push_back({p + "ffn_up.weight", {s.n_embd, s.n_ff}, false});
        ts.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}, false});
    }
    std::vector<std::vector<uint8_t>> data(ts.size() + 1);
    if (s.llama3_rope) {
        // Llama 3.1+ frequency scaling (factor 32, low 1, high 4, original context 8192) as per-dimension divisors.
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
        auto& d = data.back();
        d.resize(f.size() * 4);
        std::memcpy(d.data(), f.data(), d.size());
        w.add_tensor("rope_freqs.weight", DType::F32, {half}, d.data(), d.size());
    }
    const int n = static_cast<int>(ts.size());
    for (int i = 0; i < n; ++i) {
        if (progress) progress(i, n);
        const T& t = ts[static_cast<size_t>(i)];
        int64_t count = 1;
        for (int64_t d : t.dims) count *= d;
        const DType type = t.norm ? DType::F32 : opt.type;
        const int64_t cols = t.dims[0], rows = count / cols;
        auto& buf = data[static_cast<size_t>(i)];
        buf.resize(row_bytes(type, cols) * static_cast<size_t>(rows));
#pragma omp parallel
        {
            std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                // One generator per row, seeded from (seed, tensor, row): the file does not depend on threads.
                std::mt19937_64 rng(opt.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) * 1000003ull +
                                    static_cast<uint64_t>(r));
                for (int64_t c = 0; c < cols; c += 2) {
                    if (t.norm) {
                        row[c] = 1.0f;
                        if (c + 1 < cols) row[c + 1] = 1.0f;
                        continue;
                    }
                    // Box-Muller from raw 53-bit uniforms (std::normal_distribution differs between libraries).
                    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
                    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
                    const double rad = std::sqrt(-2.0 * std::log(u1));
                    row[c] = static_cast<float>(opt.stddev * rad * std::cos(2 * M_PI * u2));
                    if (c + 1 < cols) row[c + 1] = static_cast<float>(opt.stddev * rad * std::sin(2 * M_PI * u2));
                }
                kernels::quantize_row(type, row.data(), buf.data() + r * row_bytes(type, cols), cols);
            }
        }
        w.add_tensor(t.name, type, t.dims, buf.data(), buf.size());
    }
    if (progress) progress(n, n);
    w.write(out);
    size_t total = 0;
    for (const auto& d : data) total += d.size();
    return total;
}

}  // namespace hearth
