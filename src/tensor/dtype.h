// Tensor element types and quantized block layouts.
// The layouts are GGUF's (ggml's) on-disk formats, bit for bit, so that weights are used straight from the
// mmap'd file. Written by hand because no packaged library reads or computes on these formats.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hearth {

// Values are the GGML type ids stored in GGUF files.
enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ4_NL = 20,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

struct DTypeInfo {
    const char* name;    // "Q4_K"
    int block_elems;     // elements per block (1 for plain types)
    int block_bytes;     // bytes per block
    bool supported;      // hearth can compute with it (dequantize + dot)
};

// Returns nullptr for an id that is not a known GGML type.
const DTypeInfo* dtype_info(uint32_t id);
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Parses "Q4_K", "q8_0", "f16"...; returns false if unknown.
bool dtype_from_name(std::string_view name, DType& out);
// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers).
size_t row_bytes(DType t, int64_t n);
// Byte offsets in one block of its f16 scale fields (d, and dmin / m where the type has them); empty for plain
// types. Tests and benchmarks fill random blocks and write finite scales there.
std::vector<int> f16_scale_offsets(DType t);

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32, QK4_NL = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

using f16_t = uint16_t;   // IEEE half bits
using bf16_t = uint16_t;  // bfloat16 bits

#pragma pack(push, 1)
struct BlockQ4_0 { f16_t d; uint8_t qs[QK4_0 / 2]; };
struct BlockQ4_1 { f16_t d; f16_t m; uint8_t qs[QK4_1 / 2]; };
struct BlockQ5_0 { f16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct BlockQ5_1 { f16_t d; f16_t m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct BlockQ8_0 { f16_t d; int8_t qs[QK8_0]; };
struct BlockIQ4_NL { f16_t d; uint8_t qs[QK4_NL / 2]; };
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; f16_t d; f16_t dmin; };
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; f16_t d; };
struct BlockQ4_K { f16_t d; f16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { f16_t d; f16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; f16_t d; };
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Activation format for integer dot products against quantized weights (hearth's own, not a GGUF type):
// 32 int8 values with one f32 scale, plus the sums of each 16-element half (pre-multiplied by nothing) so that
// formats with per-block minimums (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) can apply them without touching the values.
struct alignas(4) BlockQ8A {
    float d;         // x[i] ~= d * qs[i]
    int16_t sum[2];  // sum of qs[0..15], sum of qs[16..31]
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8A) == 40);

float f16_to_f32(f16_t h);
f16_t f32_to_f16(float f);  // round to nearest even
inline float bf16_to_f32(bf16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
bf16_t f32_to_bf16(float f);  // round to nearest even, NaN kept quiet

}  // namespace hearth
