// Block codecs for the GGUF quantized formats: each block is unpacked into plain small integers (the
// quantized values, one per element, plus the integer sub-block scales) and packed back. The reference
// kernels (kernels/ref.cpp) decode through unpack_*, the quantizers (quantize.cpp) encode through pack_*, so
// the bit layout of every format is written down exactly once, here. Element e of a block is always q[e].
// Internal to the tensor module; the public entry points are in tensor/kernels.h.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor/dtype.h"

namespace hearth::quant {

// IQ4_NL's 16 non-linear levels (index = the 4-bit code); x = d * kIQ4NL[code].
inline constexpr int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};

// ---- 4-bit codes of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) -----------------------------
// 16 bytes hold 32 nibbles: byte j has element j in its low nibble and element j + 16 in its high nibble.
inline void unpack_nibbles32(const uint8_t qs[16], uint8_t q[32]) {
    for (int j = 0; j < 16; ++j) {
        q[j] = qs[j] & 0x0F;
        q[j + 16] = qs[j] >> 4;
    }
}
inline void pack_nibbles32(const uint8_t q[32], uint8_t qs[16]) {
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

// Fifth bits of Q5_0 / Q5_1: qh[4] is one little-endian uint32 whose bit e is bit 4 of element e.
inline uint32_t load_qh32(const uint8_t qh[4]) {
    return uint32_t(qh[0]) | (uint32_t(qh[1]) << 8) | (uint32_t(qh[2]) << 16) | (uint32_t(qh[3]) << 24);
}
inline void store_qh32(uint32_t v, uint8_t qh[4]) {
    for (int i = 0; i < 4; ++i) qh[i] = uint8_t(v >> (8 * i));
}
// 5-bit codes 0..31 of a Q5_0 / Q5_1 block.
inline void unpack_q5(const uint8_t qh[4], const uint8_t qs[16], uint8_t q[32]) {
    unpack_nibbles32(qs, q);
    const uint32_t h = load_qh32(qh);
    for (int e = 0; e < 32; ++e) q[e] = uint8_t(q[e] | (((h >> e) & 1) << 4));
}
inline void pack_q5(const uint8_t q[32], uint8_t qh[4], uint8_t qs[16]) {
    pack_nibbles32(q, qs);
    uint32_t h = 0;
    for (int e = 0; e < 32; ++e) h |= uint32_t((q[e] >> 4) & 1) << e;
    store_qh32(h, qh);
}

// ---- Q2_K: 256 elements = 16 sub-blocks of 16 ----------------------------------------------------------
// scales[s]: low nibble = scale of sub-block s, high nibble = its min. qs: 2-bit codes; element
// e = 128*h + 32*j + l (h < 2, j < 4, l < 32) lives in bits 2j..2j+1 of qs[32*h + l].
// x = d * scale * q - dmin * min.
inline void unpack_q2_k(const BlockQ2_K& b, uint8_t q[256], uint8_t sc[16], uint8_t mn[16]) {
    for (int s = 0; s < 16; ++s) {
        sc[s] = b.scales[s] & 0x0F;
        mn[s] = b.scales[s] >> 4;
    }
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) q[128 * h + 32 * j + l] = (b.qs[32 * h + l] >> (2 * j)) & 3;
}
inline void pack_q2_k(const uint8_t q[256], const uint8_t sc[16], const uint8_t mn[16], BlockQ2_K& b) {
    for (int s = 0; s < 16; ++s) b.scales[s] = uint8_t((sc[s] & 0x0F) | ((mn[s] & 0x0F) << 4));
    std::memset(b.qs, 0, sizeof(b.qs));
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l)
                b.qs[32 * h + l] |= uint8_t((q[128 * h + 32 * j + l] & 3) << (2 * j));
}

// ---- Q3_K: 256 elements = 16 sub-blocks of 16 ----------------------------------------------------------
// Codes are 3 bits: the low 2 bits sit in qs exactly as Q2_K's do, the third bit of element
// e = 128*h + 32*j + l is bit (4*h + j) of hmask[l]. Value q = code - 4 (range -4..3).
// The 16 scales are 6-bit, stored with a +32 bias in 12 bytes: the low 4 bits of scale s are the low
// nibble of scales[s] for s < 8 and the high nibble of scales[s - 8] for s >= 8; its high 2 bits are bits
// 2*(s/4)..2*(s/4)+1 of scales[8 + s%4]. x = d * (scale - 32) * q.
inline void unpack_q3_k_scales(const uint8_t packed[12], int8_t sc[16]) {
    for (int s = 0; s < 16; ++s) {
        const int lo = s < 8 ? (packed[s] & 0x0F) : (packed[s - 8] >> 4);
        const int hi = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = int8_t((lo | (hi << 4)) - 32);
    }
}
inline void pack_q3_k_scales(const int8_t sc[16], uint8_t packed[12]) {
    std::memset(packed, 0, 12);
    for (int s = 0; s < 16; ++s) {
        const int v = sc[s] + 32;  // 0..63
        if (s < 8)
            packed[s] |= uint8_t(v & 0x0F);
        else
            packed[s - 8] |= uint8_t((v & 0x0F) << 4);
        packed[8 + s % 4] |= uint8_t(((v >> 4) & 3) << (2 * (s / 4)));
    }
}
inline void unpack_q3_k(const BlockQ3_K& b, int8_t q[256], int8_t sc[16]) {
    unpack_q3_k_scales(b.scales, sc);
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) {
                const int lo = (b.qs[32 * h + l] >> (2 * j)) & 3;
                const int hi = (b.hmask[l] >> (4 * h + j)) & 1;
                q[128 * h + 32 * j + l] = int8_t(lo + 4 * hi - 4);
            }
}
inline void pack_q3_k(const int8_t q[256], const int8_t sc[16], BlockQ3_K& b) {
    pack_q3_k_scales(sc, b.scales);
    std::memset(b.qs, 0, sizeof(b.qs));
    std::memset(b.hmask, 0, sizeof(b.hmask));
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) {
                const int code = q[128 * h + 32 * j + l] + 4;  // 0..7
                b.qs[32 * h + l] |= uint8_t((code & 3) << (2 * j));
                b.hmask[l] |= uint8_t(((code >> 2) & 1) << (4 * h + j));
            }
}

// ---- Q4_K / Q5_K scales: 8 sub-blocks of 32, a 6-bit scale and a 6-bit min each, in 12 bytes -----------
// bytes 0..3: low 6 bits = scale 0..3; top 2 bits = bits 4..5 of scale 4..7
// bytes 4..7: low 6 bits = min 0..3;   top 2 bits = bits 4..5 of min 4..7
// bytes 8..11: low nibble = bits 0..3 of scale 4..7; high nibble = bits 0..3 of min 4..7
inline void unpack_k_scales(const uint8_t p[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int s = 0; s < 4; ++s) {
        sc[s] = p[s] & 63;
        mn[s] = p[s + 4] & 63;
    }
    for (int s = 4; s < 8; ++s) {
        sc[s] = uint8_t((p[s + 4] & 0x0F) | ((p[s - 4] >> 6) << 4));
        mn[s] = uint8_t((p[s + 4] >> 4) | ((p[s] >> 6) << 4));
    }
}
inline void pack_k_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t p[12]) {
    for (int s = 0; s < 4; ++s) {
        p[s] = uint8_t((sc[s] & 63) | (((sc[s + 4] >> 4) & 3) << 6));
        p[s + 4] = uint8_t((mn[s] & 63) | (((mn[s + 4] >> 4) & 3) << 6));
        p[s + 8] = uint8_t((sc[s + 4] & 0x0F) | ((mn[s + 4] & 0x0F) << 4));
    }
}

// ---- Q4_K: 4-bit codes; element e = 64*c + l (l < 32) is the low nibble of qs[32*c + l], element
// 64*c + 32 + l its high nibble. Sub-block s = e / 32. x = d * scale[s] * q - dmin * min[s].
inline void unpack_q4_k(const BlockQ4_K& b, uint8_t q[256], uint8_t sc[8], uint8_t mn[8]) {
    unpack_k_scales(b.scales, sc, mn);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            q[64 * c + l] = b.qs[32 * c + l] & 0x0F;
            q[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        }
}
inline void pack_q4_k(const uint8_t q[256], const uint8_t sc[8], const uint8_t mn[8], BlockQ4_K& b) {
    pack_k_scales(sc, mn, b.scales);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
            b.qs[32 * c + l] = uint8_t((q[64 * c + l] & 0x0F) | ((q[64 * c + 32 + l] & 0x0F) << 4));
}

// ---- Q5_K: Q4_K's nibbles plus a fifth bit: bit s of qh[l] is bit 4 of element 32*s + l.
inline void unpack_q5_k(const BlockQ5_K& b, uint8_t q[256], uint8_t sc[8], uint8_t mn[8]) {
    unpack_k_scales(b.scales, sc, mn);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            q[64 * c + l] = b.qs[32 * c + l] & 0x0F;
            q[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        }
    for (int s = 0; s < 8; ++s)
        for (int l = 0; l < 32; ++l) q[32 * s + l] = uint8_t(q[32 * s + l] | (((b.qh[l] >> s) & 1) << 4));
}
inline void pack_q5_k(const uint8_t q[256], const uint8_t sc[8], const uint8_t mn[8], BlockQ5_K& b) {
    pack_k_scales(sc, mn, b.scales);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
            b.qs[32 * c + l] = uint8_t((q[64 * c + l] & 0x0F) | ((q[64 * c + 32 + l] & 0x0F) << 4));
    std::memset(b.qh, 0, sizeof(b.qh));
    for (int s = 0; s < 8; ++s)
        for (int l = 0; l < 32; ++l) b.qh[l] |= uint8_t(((q[32 * s + l] >> 4) & 1) << s);
}

// ---- Q6_K: 256 elements = 16 sub-blocks of 16, int8 scales. 6-bit codes, value q = code - 32.
// Element e = 128*h + 32*k + l (h < 2, k < 4, l < 32): low 4 bits in ql[64*h + 32*(k & 1) + l] (low nibble
// for k < 2, high nibble for k >= 2), high 2 bits in bits 2k..2k+1 of qh[32*h + l].
// x = d * scale[e / 16] * q.
inline void unpack_q6_k(const BlockQ6_K& b, int8_t q[256]) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const uint8_t lbyte = b.ql[64 * h + 32 * (k & 1) + l];
                const int lo = k < 2 ? (lbyte & 0x0F) : (lbyte >> 4);
                const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = int8_t((lo | (hi << 4)) - 32);
            }
}
inline void pack_q6_k(const int8_t q[256], BlockQ6_K& b) {
    std::memset(b.ql, 0, sizeof(b.ql));
    std::memset(b.qh, 0, sizeof(b.qh));
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int code = q[128 * h + 32 * k + l] + 32;  // 0..63
                b.ql[64 * h + 32 * (k & 1) + l] |= uint8_t(k < 2 ? (code & 0x0F) : ((code & 0x0F) << 4));
                b.qh[32 * h + l] |= uint8_t(((code >> 4) & 3) << (2 * k));
            }
}

}  // namespace hearth::quant
