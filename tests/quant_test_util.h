// Helpers the quantization and kernel tests share.
#pragma once
#include <vector>

#include "tensor/dtype.h"

namespace hearth::test {

// Byte offsets of the f16 scale fields of one block (d, and dmin / m where present): random bytes written there
// are replaced by finite values, so random blocks exercise every code bit without NaN or infinite scales.
inline std::vector<int> f16_fields(DType t) {
    switch (t) {
        case DType::Q4_0:
        case DType::Q5_0:
        case DType::Q8_0:
        case DType::IQ4_NL: return {0};
        case DType::Q4_1:
        case DType::Q5_1:
        case DType::Q4_K:
        case DType::Q5_K: return {0, 2};
        case DType::Q2_K: return {80, 82};
        case DType::Q3_K: return {108};
        case DType::Q6_K: return {208};
        default: return {};
    }
}

}  // namespace hearth::test
