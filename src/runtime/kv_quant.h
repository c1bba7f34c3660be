// KV cache value formats (`--kv-type`): the plain ones (f32, f16) and the compressed ones, in the layout of
// one cache block (block_size cells of one layer). Written by hand: no packaged library stores a paged
// attention cache, and the layouts are chosen so that the attention kernel dequantizes 16 values per load
// in registers.
//
// q8 and q4 follow KIVI (Liu et al. 2024): keys are quantized per channel (one scale per channel over the 16
// cells of a block: keys have outlier channels, so a channel's values share a range), values per token (one
// scale per group of 32 channels of a cell). q8 is symmetric (absmax / 127), q4 asymmetric (min and step).
// rot4 and rot3 follow the rotation methods (QuaRot, TurboQuant): each head's K and V vectors are multiplied by
// a fixed randomized Hadamard matrix before quantization, which spreads outlier channels over all of them and
// makes the coordinates nearly Gaussian; each (cell, head) vector is then coded against the Lloyd-Max levels of
// a unit Gaussian (16 or 8 of them) with one 8-bit logarithmic scale. The query is rotated the same way (an
// orthogonal map keeps q.k), and the attention output is rotated back (it is a sum of rotated V rows).
//
// The compressed types keep recent cells exact (KIVI's residual): a block is written as f16 (rotated already
// for rot4 / rot3), and quantized once `residual` positions of its sequence follow it (runtime/kv_cache.h).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/dtype.h"

namespace hearth {

enum class KvType : uint8_t { F32, F16, Q8, Q4, Rot4, Rot3 };
const char* kv_type_name(KvType t);
// "f32", "f16", "q8", "q4", "rot4", "rot3"; throws hearth::Error naming the accepted names otherwise.
KvType parse_kv_type(std::string_view name);
// Stored quantized once aged, with an f16 residual before that.
inline bool kv_type_quantized(KvType t) { return t != KvType::F32 && t != KvType::F16; }
// Stored in the rotated basis (q rotated before scores, the output rotated back).
inline bool kv_type_rotated(KvType t) { return t == KvType::Rot4 || t == KvType::Rot3; }

// Cells per block of the compressed types (a key channel's scale covers one block).
constexpr int kKvQuantBlock = 16;
// Channels per value scale group of q8 / q4.
constexpr int kKvValueGroup = 32;

// The byte geometry of one block of one layer.
struct KvLayout {
    KvType type = KvType::F16;
    int kv_dim = 0, head_dim = 0, n_head = 0, block_size = 0;
    size_t k_bytes = 0, v_bytes = 0;  // per block: codes and scales
    double bytes_per_token() const { return static_cast<double>(k_bytes + v_bytes) / block_size; }
};
// Throws hearth::Error naming the type and the shape when the type cannot store it (q8 / q4: kv_dim a multiple
// of 32; rot4 / rot3: a power-of-two head size; compressed types: blocks of 16 cells).
KvLayout kv_layout(KvType type, int kv_dim, int head_dim, int block_size);

// A compressed block from its f16 form (K [kv_dim][16] transposed, V [16][kv_dim]; for rot types already
// rotated) and back. key_mean (rot types; kv_dim floats, or null for zeros) is subtracted from every key before
// quantizing and added back when dequantizing: keys carry large per-channel offsets, which a per-vector code
// would spend its few levels on, while attention does not see them (q.mean is the same for every cell a query
// reads, and softmax ignores a constant), so the kernel reads centred keys and shifts the scores once.
void kv_quantize_block(const KvLayout& L, const f16_t* k_in, const f16_t* v_in, uint8_t* k_out, uint8_t* v_out,
                       const float* key_mean = nullptr);
void kv_dequantize_block(const KvLayout& L, const uint8_t* k_in, const uint8_t* v_in, f16_t* k_out, f16_t* v_out,
                         const float* key_mean = nullptr);

// One value of a block of L.type (the reference attention reads these): K of (channel, cell), centred (without
// the key mean) for rot types, V of (cell, channel).
float kv_k_value(const KvLayout& L, const void* k_block, int channel, int cell);
float kv_v_value(const KvLayout& L, const void* v_block, int cell, int channel);

// The randomized Hadamard rotation of one head vector (n a power of two), in place, and its inverse.
void kv_rotate(float* x, int n);
void kv_unrotate(float* x, int n);

// The rot types' code values: Lloyd-Max levels of N(0, 1), ascending.
extern const float kKvRot4Levels[16];
extern const float kKvRot3Levels[8];
// The rot types' 8-bit scale: 2^((e - 144) / 8) = 2^((e & 7) / 8) * 2^((e >> 3) - 18), from 2^-18 to 2^13.9 in
// steps of 9 % (computed as that product, exactly, by the scalar and SIMD readers alike).
inline constexpr int kKvScaleBias = 144;
inline constexpr float kKvRotScaleMantissa[8] = {1.0f,       1.09050773f, 1.18920712f, 1.29683955f,
                                                 1.41421356f, 1.54221083f, 1.68179283f, 1.83400809f};
inline float kv_rot_scale(uint8_t e) { return std::ldexp(kKvRotScaleMantissa[e & 7], (e >> 3) - kKvScaleBias / 8); }

}  // namespace hearth
