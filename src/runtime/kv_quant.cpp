#include "runtime/kv_quant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"

namespace hearth {

const float kKvRot4Levels[16] = {-2.732590f, -2.069017f, -1.618046f, -1.256231f, -0.942340f, -0.656759f,
                                 -0.388048f, -0.128395f, 0.128395f,  0.388048f,  0.656759f,  0.942340f,
                                 1.256231f,  1.618046f,  2.069017f,  2.732590f};
const float kKvRot3Levels[8] = {-2.151946f, -1.343909f, -0.756005f, -0.245094f,
                                0.245094f,  0.756005f,  1.343909f,  2.151946f};

namespace {

constexpr std::array<const char*, 6> kNames = {"f32", "f16", "q8", "q4", "rot4", "rot3"};

// Bytes of the codes of one block, K or V alike (the same bits per value; the scales follow them).
size_t code_bytes(KvType t, int D) {
    switch (t) {
        case KvType::Q8: return static_cast<size_t>(D) * 16;
        case KvType::Q4:
        case KvType::Rot4: return static_cast<size_t>(D) * 8;
        case KvType::Rot3: return static_cast<size_t>(D) * 6;
        default: return 0;
    }
}

// A 3-bit code: two low bits in a 32-bit plane (value i at bits 2i), the high bit in a 16-bit plane (bit i):
// 16 codes in 6 bytes, which the SIMD kernel splits with two shifts and a mask register.
int get3(const uint8_t* unit, int i) {
    uint32_t lo;
    uint16_t hi;
    std::memcpy(&lo, unit, 4);
    std::memcpy(&hi, unit + 4, 2);
    return static_cast<int>((lo >> (2 * i)) & 3u) | static_cast<int>(((hi >> i) & 1u) << 2);
}
void put3(uint8_t* unit, int i, int code) {
    uint32_t lo;
    uint16_t hi;
    std::memcpy(&lo, unit, 4);
    std::memcpy(&hi, unit + 4, 2);
    lo = (lo & ~(3u << (2 * i))) | (static_cast<uint32_t>(code & 3) << (2 * i));
    hi = static_cast<uint16_t>((hi & ~(1u << i)) | (static_cast<uint32_t>((code >> 2) & 1) << i));
    std::memcpy(unit, &lo, 4);
    std::memcpy(unit + 4, &hi, 2);
}
int get4(const uint8_t* codes, int i) { return (codes[i / 2] >> (4 * (i & 1))) & 15; }
void put4(uint8_t* codes, int i, int code) {
    uint8_t& b = codes[i / 2];
    b = static_cast<uint8_t>((b & ~(15 << (4 * (i & 1)))) | ((code & 15) << (4 * (i & 1))));
}

float h2f(f16_t h) { return f16_to_f32(h); }
f16_t f2h(float f) { return f32_to_f16(f); }
f16_t load_h(const uint8_t* p) {
    f16_t h;
    std::memcpy(&h, p, 2);
    return h;
}

// Symmetric 8-bit codes of n values (stride apart in `in`) with one f16 scale.
void quant_q8(const float* x, int n, int8_t* codes, uint8_t* scale_at) {
    float amax = 0;
    for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    const f16_t d16 = f2h(amax / 127.0f);
    const float d = h2f(d16);
    std::memcpy(scale_at, &d16, 2);
    for (int i = 0; i < n; ++i)
        codes[i] = d == 0 ? 0 : static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / d), -127.0f, 127.0f));
}

// Asymmetric 4-bit codes of n values with an f16 step and an f16 minimum: value = code * step + min.
void quant_q4(const float* x, int n, int* codes, uint8_t* step_at, uint8_t* min_at) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const f16_t m16 = f2h(lo);
    const float m = h2f(m16);
    const f16_t d16 = f2h((hi - m) / 15.0f);
    const float d = h2f(d16);
    std::memcpy(step_at, &d16, 2);
    std::memcpy(min_at, &m16, 2);
    for (int i = 0; i < n; ++i)
        codes[i] = d == 0 ? 0 : static_cast<int>(std::clamp(std::nearbyint((x[i] - m) / d), 0.0f, 15.0f));
}

// The nearest of n ascending levels to v, from a table over [-4, 4) in steps of 1/256 (a value within 1/256 of a
// midpoint may take the other neighbour, which costs nothing measurable; a search per value would cost the
// quantization of a long prompt most of its time).
struct NearestTable {
    uint8_t code[2048];
    NearestTable(const float* levels, int n_levels) {
        for (int i = 0; i < 2048; ++i) {
            const float v = (static_cast<float>(i) + 0.5f) / 256.0f - 4.0f;
            int c = 0;
            for (int k = 0; k + 1 < n_levels; ++k) c += v > 0.5f * (levels[k] + levels[k + 1]);
            code[i] = static_cast<uint8_t>(c);
        }
    }
    int nearest(float v) const {
        const float i = std::clamp((v + 4.0f) * 256.0f, 0.0f, 2047.0f);
        return code[static_cast<int>(i)];
    }
};

// Codes of one rotated head vector against the Gaussian levels, with the 8-bit scale of least squared error
// (searched around the vector's RMS: the levels fit a Gaussian of that deviation, a short vector is not one).
uint8_t quant_rot(const float* x, int n, const float* levels, int n_levels, int* codes) {
    static const NearestTable t3(kKvRot3Levels, 8), t4(kKvRot4Levels, 16);
    const NearestTable& table = n_levels == 8 ? t3 : t4;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double rms = std::sqrt(ss / n);
    const int e0 = rms > 0 ? static_cast<int>(std::lround(8.0 * std::log2(rms))) + kKvScaleBias : 0;
    int best_e = std::clamp(e0, 0, 255);
    double best = INFINITY;
    for (int e = std::max(0, e0 - 6); e <= std::min(255, e0 + 2); ++e) {
        const float s = kv_rot_scale(static_cast<uint8_t>(e)), inv = 1.0f / s;
        double err = 0;
        for (int i = 0; i < n; ++i) {
            const float r = x[i] - s * levels[table.nearest(x[i] * inv)];
            err += static_cast<double>(r) * r;
        }
        if (err < best) best = err, best_e = e;
    }
    const float inv = 1.0f / kv_rot_scale(static_cast<uint8_t>(best_e));
    for (int i = 0; i < n; ++i) codes[i] = table.nearest(x[i] * inv);
    return static_cast<uint8_t>(best_e);
}

// Rotation signs: a fixed pseudo-random +-1 per coordinate (the same for every head and layer).
float rot_sign(int i) {
    uint64_t z = static_cast<uint64_t>(i) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return ((z ^ (z >> 31)) & 1) ? -1.0f : 1.0f;
}

void hadamard(float* x, int n) {
    for (int len = 1; len < n; len <<= 1)
        for (int i = 0; i < n; i += 2 * len)
            for (int j = i; j < i + len; ++j) {
                const float a = x[j], b = x[j + len];
                x[j] = a + b;
                x[j + len] = a - b;
            }
    const float norm = 1.0f / std::sqrt(static_cast<float>(n));
    for (int i = 0; i < n; ++i) x[i] *= norm;
}

}  // namespace

const char* kv_type_name(KvType t) { return kNames.at(static_cast<size_t>(t)); }

KvType parse_kv_type(std::string_view name) {
    for (size_t i = 0; i < kNames.size(); ++i)
        if (name == kNames[i]) return static_cast<KvType>(i);
    fail("unknown KV cache type '{}' (known: f16, f32, q8, q4, rot4, rot3)", name);
}

KvLayout kv_layout(KvType type, int kv_dim, int head_dim, int block_size) {
    if (kv_dim <= 0 || head_dim <= 0 || kv_dim % head_dim != 0 || block_size <= 0)
        fail("kv cache: invalid shape (kv_dim {}, head size {}, block {})", kv_dim, head_dim, block_size);
    KvLayout L;
    L.type = type;
    L.kv_dim = kv_dim;
    L.head_dim = head_dim;
    L.n_head = kv_dim / head_dim;
    L.block_size = block_size;
    const size_t cells = static_cast<size_t>(kv_dim) * block_size;
    if (!kv_type_quantized(type)) {
        L.k_bytes = L.v_bytes = cells * (type == KvType::F32 ? sizeof(float) : sizeof(f16_t));
        return L;
    }
    const char* name = kv_type_name(type);
    if (block_size != kKvQuantBlock)
        fail("KV cache type {} needs blocks of {} cells (got {})", name, kKvQuantBlock, block_size);
    if ((type == KvType::Q8 || type == KvType::Q4) && kv_dim % kKvValueGroup != 0)
        fail("KV cache type {} needs a KV width that is a multiple of {}: this model's is {} ({} heads of {})", name,
             kKvValueGroup, kv_dim, L.n_head, head_dim);
    if (kv_type_rotated(type) && head_dim > 512)
        fail("KV cache type {} supports head sizes up to 512: this model's head size is {}", name, head_dim);
    if (kv_type_rotated(type) && (head_dim & (head_dim - 1)) != 0)
        fail("KV cache type {} needs a power-of-two head size for its Hadamard rotation: this model's head size is {}",
             name, head_dim);
    if (kv_dim % 16 != 0)
        fail("KV cache type {} needs a KV width that is a multiple of 16: this model's is {} ({} heads of {})", name,
             kv_dim, L.n_head, head_dim);
    const size_t D = static_cast<size_t>(kv_dim);
    switch (type) {
        case KvType::Q8:
            L.k_bytes = code_bytes(type, kv_dim) + 2 * D;
            L.v_bytes = code_bytes(type, kv_dim) + 2 * 16 * (D / kKvValueGroup);
            break;
        case KvType::Q4:
            L.k_bytes = code_bytes(type, kv_dim) + 4 * D;
            L.v_bytes = code_bytes(type, kv_dim) + 4 * 16 * (D / kKvValueGroup);
            break;
        default:  // rot: one u8 scale per (cell, head) on each side
            L.k_bytes = code_bytes(type, kv_dim) + 16 * static_cast<size_t>(L.n_head);
            L.v_bytes = code_bytes(type, kv_dim) + 16 * static_cast<size_t>(L.n_head);
            break;
    }
    return L;
}

void kv_quantize_block(const KvLayout& L, const f16_t* k_in, const f16_t* v_in, uint8_t* k_out, uint8_t* v_out,
                       const float* key_mean) {
    const int D = L.kv_dim, hd = L.head_dim;
    const size_t kc = code_bytes(L.type, D), vc = kc;
    std::memset(k_out, 0, L.k_bytes);
    std::memset(v_out, 0, L.v_bytes);
    float x[16];
    int codes[kKvValueGroup];
    // Keys: per channel over the block's cells (q8 / q4), or per (cell, head) vector (rot).
    if (L.type == KvType::Q8 || L.type == KvType::Q4) {
        for (int ch = 0; ch < D; ++ch) {
            for (int c = 0; c < 16; ++c) x[c] = h2f(k_in[ch * 16 + c]);
            if (L.type == KvType::Q8) {
                quant_q8(x, 16, reinterpret_cast<int8_t*>(k_out) + ch * 16, k_out + kc + 2 * ch);
            } else {
                quant_q4(x, 16, codes, k_out + kc + 2 * ch, k_out + kc + 2 * D + 2 * ch);
                for (int c = 0; c < 16; ++c) put4(k_out + ch * 8, c, codes[c]);
            }
        }
        // Values: per cell, per group of 32 channels.
        const int G = kKvValueGroup, ng = D / G;
        float g[kKvValueGroup];
        for (int c = 0; c < 16; ++c)
            for (int gi = 0; gi < ng; ++gi) {
                for (int i = 0; i < G; ++i) g[i] = h2f(v_in[c * D + gi * G + i]);
                if (L.type == KvType::Q8) {
                    quant_q8(g, G, reinterpret_cast<int8_t*>(v_out) + c * D + gi * G, v_out + vc + 2 * (c * ng + gi));
                } else {
                    uint8_t* sm = v_out + vc + 4 * (c * ng + gi);
                    quant_q4(g, G, codes, sm, sm + 2);
                    for (int i = 0; i < G; ++i) put4(v_out + c * (D / 2), gi * G + i, codes[i]);
                }
            }
        return;
    }
    const bool three = L.type == KvType::Rot3;
    const float* levels = three ? kKvRot3Levels : kKvRot4Levels;
    const int n_levels = three ? 8 : 16;
    std::vector<float> head(static_cast<size_t>(hd));
    std::vector<int> hc(static_cast<size_t>(hd));
    for (int h = 0; h < L.n_head; ++h)
        for (int c = 0; c < 16; ++c) {
            // Key vector of (cell, head) from the transposed block.
            for (int j = 0; j < hd; ++j)
                head[j] = h2f(k_in[(h * hd + j) * 16 + c]) - (key_mean ? key_mean[h * hd + j] : 0.0f);
            k_out[kc + h * 16 + c] = quant_rot(head.data(), hd, levels, n_levels, hc.data());
            for (int j = 0; j < hd; ++j) {
                const int ch = h * hd + j;
                if (three) put3(k_out + ch * 6, c, hc[j]);
                else put4(k_out + ch * 8, c, hc[j]);
            }
            for (int j = 0; j < hd; ++j) head[j] = h2f(v_in[c * D + h * hd + j]);
            v_out[vc + c * L.n_head + h] = quant_rot(head.data(), hd, levels, n_levels, hc.data());
            for (int j = 0; j < hd; ++j) {
                const int ch = h * hd + j;
                if (three) put3(v_out + c * (D / 16) * 6 + (ch / 16) * 6, ch % 16, hc[j]);
                else put4(v_out + c * (D / 2), ch, hc[j]);
            }
        }
}

float kv_k_value(const KvLayout& L, const void* k_block, int ch, int cell) {
    const auto* b = static_cast<const uint8_t*>(k_block);
    const int D = L.kv_dim;
    switch (L.type) {
        case KvType::F32: return static_cast<const float*>(k_block)[static_cast<size_t>(ch) * L.block_size + cell];
        case KvType::F16: return h2f(static_cast<const f16_t*>(k_block)[static_cast<size_t>(ch) * L.block_size + cell]);
        case KvType::Q8:
            return static_cast<float>(reinterpret_cast<const int8_t*>(b)[ch * 16 + cell]) * h2f(load_h(b + 16 * D + 2 * ch));
        case KvType::Q4:
            return static_cast<float>(get4(b + ch * 8, cell)) * h2f(load_h(b + 8 * D + 2 * ch)) +
                   h2f(load_h(b + 10 * D + 2 * ch));
        case KvType::Rot4:
            return kKvRot4Levels[get4(b + ch * 8, cell)] * kv_rot_scale(b[8 * D + (ch / L.head_dim) * 16 + cell]);
        case KvType::Rot3:
            return kKvRot3Levels[get3(b + ch * 6, cell)] * kv_rot_scale(b[6 * D + (ch / L.head_dim) * 16 + cell]);
    }
    return 0;
}

float kv_v_value(const KvLayout& L, const void* v_block, int cell, int ch) {
    const auto* b = static_cast<const uint8_t*>(v_block);
    const int D = L.kv_dim, ng = D / kKvValueGroup;
    switch (L.type) {
        case KvType::F32: return static_cast<const float*>(v_block)[static_cast<size_t>(cell) * D + ch];
        case KvType::F16: return h2f(static_cast<const f16_t*>(v_block)[static_cast<size_t>(cell) * D + ch]);
        case KvType::Q8:
            return static_cast<float>(reinterpret_cast<const int8_t*>(b)[cell * D + ch]) *
                   h2f(load_h(b + 16 * D + 2 * (cell * ng + ch / kKvValueGroup)));
        case KvType::Q4: {
            const uint8_t* sm = b + 8 * D + 4 * (cell * ng + ch / kKvValueGroup);
            return static_cast<float>(get4(b + cell * (D / 2), ch)) * h2f(load_h(sm)) + h2f(load_h(sm + 2));
        }
        case KvType::Rot4:
            return kKvRot4Levels[get4(b + cell * (D / 2), ch)] * kv_rot_scale(b[8 * D + cell * L.n_head + ch / L.head_dim]);
        case KvType::Rot3:
            return kKvRot3Levels[get3(b + cell * (D / 16) * 6 + (ch / 16) * 6, ch % 16)] *
                   kv_rot_scale(b[6 * D + cell * L.n_head + ch / L.head_dim]);
    }
    return 0;
}

void kv_dequantize_block(const KvLayout& L, const uint8_t* k_in, const uint8_t* v_in, f16_t* k_out, f16_t* v_out,
                         const float* key_mean) {
    const int D = L.kv_dim;
    for (int ch = 0; ch < D; ++ch)
        for (int c = 0; c < 16; ++c) {
            k_out[ch * 16 + c] = f2h(kv_k_value(L, k_in, ch, c) + (key_mean ? key_mean[ch] : 0.0f));
            v_out[c * D + ch] = f2h(kv_v_value(L, v_in, c, ch));
        }
}

void kv_rotate(float* x, int n) {
    for (int i = 0; i < n; ++i) x[i] *= rot_sign(i);
    hadamard(x, n);
}

void kv_unrotate(float* x, int n) {
    hadamard(x, n);
    for (int i = 0; i < n; ++i) x[i] *= rot_sign(i);
}

}  // namespace hearth
