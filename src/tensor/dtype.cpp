#include "tensor/dtype.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

namespace hearth {
namespace {

struct Entry {
    uint32_t id;
    DTypeInfo info;
};

constexpr Entry kEntries[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", QK4_0, sizeof(BlockQ4_0), true}},
    {3, {"Q4_1", QK4_1, sizeof(BlockQ4_1), true}},
    {6, {"Q5_0", QK5_0, sizeof(BlockQ5_0), true}},
    {7, {"Q5_1", QK5_1, sizeof(BlockQ5_1), true}},
    {8, {"Q8_0", QK8_0, sizeof(BlockQ8_0), true}},
    {9, {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", QK_K, sizeof(BlockQ2_K), true}},
    {11, {"Q3_K", QK_K, sizeof(BlockQ3_K), true}},
    {12, {"Q4_K", QK_K, sizeof(BlockQ4_K), true}},
    {13, {"Q5_K", QK_K, sizeof(BlockQ5_K), true}},
    {14, {"Q6_K", QK_K, sizeof(BlockQ6_K), true}},
    {15, {"Q8_K", QK_K, 292, false}},
    {16, {"IQ2_XXS", QK_K, 66, false}},
    {17, {"IQ2_XS", QK_K, 74, false}},
    {18, {"IQ3_XXS", QK_K, 98, false}},
    {19, {"IQ1_S", QK_K, 50, false}},
    {20, {"IQ4_NL", QK4_NL, sizeof(BlockIQ4_NL), true}},
    {21, {"IQ3_S", QK_K, 110, false}},
    {22, {"IQ2_S", QK_K, 82, false}},
    {23, {"IQ4_XS", QK_K, 136, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", QK_K, 56, false}},
    {30, {"BF16", 1, 2, true}},
    {34, {"TQ1_0", QK_K, 54, false}},
    {35, {"TQ2_0", QK_K, 66, false}},
    {39, {"MXFP4", 32, 17, false}},
};

}  // namespace

const DTypeInfo* dtype_info(uint32_t id) {
    for (const auto& e : kEntries)
        if (e.id == id) return &e.info;
    return nullptr;
}

const DTypeInfo& dtype_info(DType t) {
    static const DTypeInfo unknown{"unknown", 1, 0, false};
    const DTypeInfo* i = dtype_info(static_cast<uint32_t>(t));
    return i ? *i : unknown;
}

bool dtype_from_name(std::string_view name, DType& out) {
    std::string up(name);
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& e : kEntries) {
        if (up == e.info.name) {
            out = static_cast<DType>(e.id);
            return true;
        }
    }
    return false;
}

size_t row_bytes(DType t, int64_t n) {
    const DTypeInfo& i = dtype_info(t);
    return static_cast<size_t>(n / i.block_elems) * static_cast<size_t>(i.block_bytes);
}

float f16_to_f32(f16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                mant <<= 1;
                ++e;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | (uint32_t(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

f16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) return static_cast<f16_t>(sign | (abs > 0x7f800000u ? 0x7e00 : 0x7c00));
    if (abs >= 0x477ff000u) return static_cast<f16_t>(sign | 0x7c00);  // rounds to inf
    if (abs < 0x38800000u) {                                           // subnormal or zero in f16
        if (abs < 0x33000000u) return static_cast<f16_t>(sign);        // below half the smallest subnormal
        const uint32_t e = abs >> 23;
        const uint32_t m = (abs & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14 + (113 - e) - ...; yields mantissa bits for f16 subnormal
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return static_cast<f16_t>(sign | r);
    }
    uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
    const uint32_t rem = r & 0x1fff;
    r >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
    return static_cast<f16_t>(sign | r);
}

bf16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((x >> 16) | 0x40);  // quiet NaN
    x += 0x7fff + ((x >> 16) & 1);
    return static_cast<bf16_t>(x >> 16);
}

std::vector<int> f16_scale_offsets(DType t) {
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

}  // namespace hearth
