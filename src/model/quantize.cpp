#include "model/quantize.h"

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

struct Plan {
    DType base;          // most matrices
    DType output;        // output.weight (or a tied token_embd)
    DType more_bits;     // attn_v / ffn_down of the layers llama.cpp gives more bits (the _M mixes)
    bool mixed = false;  // _M mix
};

Plan plan_for(const std::string& target_in) {
    std::string t(target_in);
    for (auto& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (t == "Q4_K_M") return {DType::Q4_K, DType::Q6_K, DType::Q6_K, true};
    if (t == "Q5_K_M") return {DType::Q5_K, DType::Q6_K, DType::Q6_K, true};
    if (t == "Q3_K_M" || t == "Q3_K") return {DType::Q3_K, DType::Q6_K, DType::Q5_K, true};
    DType d;
    if (!dtype_from_name(t, d) || !dtype_info(d).supported)
        fail("unknown quantization type '{}' (one of F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M Q4_K Q4_K_M "
             "Q5_K Q5_K_M Q6_K IQ4_NL)",
             target_in);
    const bool plain = d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0;
    return {d, plain ? d : DType::Q6_K, d, false};
}

// llama.cpp's fallback when a row length is not a multiple of a K-quant's 256.
DType fallback(DType t, int64_t cols) {
    if (cols % dtype_info(t).block_elems == 0) return t;
    switch (t) {
        case DType::Q2_K: case DType::Q3_K: return DType::IQ4_NL;
        case DType::Q4_K: return DType::Q5_0;
        case DType::Q5_K: return DType::Q5_1;
        case DType::Q6_K: return DType::Q8_0;
        default: return cols % 32 == 0 ? DType::Q8_0 : DType::F16;
    }
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int layer_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    return std::atoi(name.c_str() + 4);
}

}  // namespace

QuantizeReport quantize_model(const std::string& in, const std::string& out, const std::string& target, int threads,
                              const std::function<void(int, int, const std::string&)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    const Plan plan = plan_for(target);
    gguf::File f = gguf::File::open(in);
    const int n_layer = static_cast<int>(
        f.get_u32_or(f.get_str_or("general.architecture", "llama") + ".block_count", 0));
    const bool has_output = f.find_tensor("output.weight") != nullptr;

    gguf::Writer w;
    w.copy_metadata(f);
    w.set("general.quantization_version", gguf::Value::u32(2));
    std::vector<std::vector<uint8_t>> buffers(f.tensors().size());
    QuantizeReport rep;
    const int n = static_cast<int>(f.tensors().size());
    for (int ti = 0; ti < n; ++ti) {
        const gguf::TensorInfo& t = f.tensors()[static_cast<size_t>(ti)];
        if (progress) progress(ti, n, t.name);
        rep.bytes_in += t.nbytes;
        const bool matrix = t.dims.size() >= 2 && t.name.size() > 7 && t.name.ends_with(".weight") &&
                            t.name.find("_norm") == std::string::npos && t.name != "rope_freqs.weight" &&
                            t.name.find("ffn_gate_inp") == std::string::npos;
        DType want = t.type;
        if (matrix) {
            const bool is_output = t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
            const int il = layer_of(t.name);
            const bool more = plan.mixed && il >= 0 && n_layer > 0 &&
                              (t.name.find("attn_v.") != std::string::npos ||
                               t.name.find("ffn_down") != std::string::npos) &&
                              (il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2);
            want = is_output ? plan.output : more ? plan.more_bits : plan.base;
            want = fallback(want, t.dims[0]);
        }
        if (want == t.type) {
            w.add_tensor(t.name, t.type, t.dims, t.data, t.nbytes);
            rep.bytes_out += t.nbytes;
            ++rep.tensors_copied;
            continue;
        }
        if (!is_float(t.type))
            fail("{}: tensor '{}' is already {}; quantize from an F32, F16 or BF16 file", in, t.name,
                 dtype_name(t.type));
        const int64_t cols = t.dims[0], rows = t.n_elements / cols;
        const size_t in_row = row_bytes(t.type, cols), out_row = row_bytes(want, cols);
        auto& buf = buffers[static_cast<size_t>(ti)];
        buf.resize(out_row * static_cast<size_t>(rows));
#pragma omp parallel num_threads(threads > 0 ? threads : omp_get_num_procs())
        {
            std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(dynamic, 16)
            for (int64_t r = 0; r < rows; ++r) {
                kernels::dequantize_row(t.type, t.data + r * in_row, row.data(), cols);
                kernels::quantize_row(want, row.data(), buf.data() + r * out_row, cols);
            }
        }
        w.add_tensor(t.name, want, t.dims, buf.data(), buf.size());
        rep.bytes_out += buf.size();
        ++rep.tensors_quantized;
    }
    if (progress) progress(n, n, "writing");
    w.write(out);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace hearth
