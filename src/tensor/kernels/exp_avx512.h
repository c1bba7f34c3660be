// e^x on 16 floats with AVX-512, shared by the kernels (SwiGLU) and attention's softmax. The function carries
// its own target attribute, so files compiled for baseline x86-64 can call it from their AVX-512 functions.
#pragma once
#include <immintrin.h>

namespace hearth::kernels {

// Relative error ~2e-7 (as good as float expf for softmax weights and activations). x is clamped to
// [-87, 100]: below, e^x is ~1e-38 (as good as 0 here); above 88.72 the result overflows to +inf as expf's
// does, and -inf gives ~0. x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for accuracy), a degree-6
// Taylor polynomial of e^r, scaled by 2^n.
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(100.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

}  // namespace hearth::kernels
