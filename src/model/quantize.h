// Model quantization: choose a type per tensor (llama.cpp's mixes for the _M types, so file sizes and
// speed compare like for like) and convert F32/F16/BF16 weights into it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "tensor/dtype.h"

namespace hearth {

struct QuantizeReport {
    size_t bytes_in = 0, bytes_out = 0;
    int tensors_quantized = 0, tensors_copied = 0;
    double seconds = 0;
};

// Target names: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K (= Q3_K_M), Q3_K_M, Q4_K, Q4_K_M,
// Q5_K, Q5_K_M, Q6_K, IQ4_NL. Throws hearth::Error for an unknown target or a source tensor that is
// already quantized.
QuantizeReport quantize_model(const std::string& in, const std::string& out, const std::string& target, int threads,
                              const std::function<void(int done, int total, const std::string& name)>& progress = {});

}  // namespace hearth
