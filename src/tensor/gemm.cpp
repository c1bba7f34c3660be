#include "tensor/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

// Cache blocking (GotoBLAS's loop order): a KC-deep panel of B (KC x NC) is packed once and reused by every
// row block; an MC x KC block of A is packed and stays in L2 while the tiles sweep the B panel, whose KC x NR
// micro-panel stays in L1 across the A micro-panels.
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 144;  // a multiple of every MR (4, 6, 12)
constexpr int64_t kNc = 2048;

// op(A)[i0 .. i0+mc)[p0 .. p0+kc) into micro-panels of MR rows: [panel][k][MR], zero rows past m.
void pack_a_f32(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int MR, float* out) {
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ir));
        float* panel = out + ir * kc;
        if (g.ta == Trans::No) {
            for (int i = 0; i < rows; ++i) {
                const float* src = g.a + (i0 + ir + i) * g.lda + p0;
                for (int64_t k = 0; k < kc; ++k) panel[k * MR + i] = src[k];
            }
        } else {
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = g.a + (p0 + k) * g.lda + i0 + ir;
                for (int i = 0; i < rows; ++i) panel[k * MR + i] = src[i];
            }
        }
        if (rows < MR)
            for (int64_t k = 0; k < kc; ++k)
                for (int i = rows; i < MR; ++i) panel[k * MR + i] = 0.0f;
    }
}

// op(B)[p0 .. p0+kc)[j0 .. j0+nc) into micro-panels of NR columns: [panel][k][NR], zero columns past n.
void pack_b_f32(const GemmArgs& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc, int NR, float* out) {
    for (int64_t jr = 0; jr < nc; jr += NR) {
        const int cols = static_cast<int>(std::min<int64_t>(NR, nc - jr));
        float* panel = out + jr * kc;
        if (g.tb == Trans::No) {
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = g.b + (p0 + k) * g.ldb + j0 + jr;
                float* dst = panel + k * NR;
                std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(cols));
                for (int j = cols; j < NR; ++j) dst[j] = 0.0f;
            }
        } else {
            for (int j = 0; j < cols; ++j) {
                const float* src = g.b + (j0 + jr + j) * g.ldb + p0;
                for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = src[k];
            }
            for (int64_t k = 0; k < kc; ++k)
                for (int j = cols; j < NR; ++j) panel[k * NR + j] = 0.0f;
        }
    }
}

// The register tiles over one packed block of mc x nc (kc steps of K per tile, in the packing's units): whole
// tiles straight into C, the tiles at the matrix's edge computed whole into a scratch tile and copied in part.
template <typename Packed, typename Tile>
void run_tiles(Tile tile, int64_t kc, const Packed* pa, const Packed* pb, int64_t mc, int64_t nc, int MR, int NR,
               float* c_block, int64_t ldc, bool acc) {
    alignas(64) float edge[16 * 64];
    for (int64_t jr = 0; jr < nc; jr += NR) {
        const int cols = static_cast<int>(std::min<int64_t>(NR, nc - jr));
        for (int64_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            float* c = c_block + ir * ldc + jr;
            if (rows == MR && cols == NR) {
                tile(kc, pa + ir * kc, pb + jr * kc, c, ldc, acc);
                continue;
            }
            tile(kc, pa + ir * kc, pb + jr * kc, edge, NR, false);
            for (int i = 0; i < rows; ++i)
                for (int j = 0; j < cols; ++j)
                    c[i * ldc + j] = acc ? c[i * ldc + j] + edge[i * NR + j] : edge[i * NR + j];
        }
    }
}

// The two ways to multiply: float tiles over float panels, and bf16 tiles over panels of bf16 pairs. Each says
// how deep a K panel is, how it packs its operands and which tile runs; the loops below serve both.
struct F32Path {
    using Packed = float;
    const kernels::SgemmKernel& kern;
    static constexpr int64_t kc_max = kKc;
    int mr() const { return kern.mr; }
    int nr() const { return kern.nr; }
    static int64_t depth(int64_t kc) { return kc; }  // packed steps per kc steps of K
    void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out) const {
        pack_a_f32(g, i0, mc, p0, kc, kern.mr, out);
    }
    void pack_b(const GemmArgs& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* out) const {
        pack_b_f32(g, j0, nc, p0, kc, kern.nr, out);
    }
    void tiles(int64_t kc, const float* pa, const float* pb, int64_t mc, int64_t nc, float* c, int64_t ldc, bool acc) const {
        run_tiles(kern.tile, kc, pa, pb, mc, nc, kern.mr, kern.nr, c, ldc, acc);
    }
};

struct Bf16Path {
    using Packed = uint32_t;
    const kernels::SgemmBf16Kernel& kern;
    static constexpr int64_t kc_max = 512;  // elements of K per panel: half the bytes of a float panel of 256
    int mr() const { return kern.mr; }
    int nr() const { return kern.nr; }
    static int64_t depth(int64_t kc) { return (kc + 1) / 2; }
    // op(A) rows [i0, i0+mc) or op(B) columns [j0, j0+nc), K steps [p0, p0+kc), as micro-panels of bf16 pairs.
    void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, uint32_t* out) const {
        const bool tr = g.ta == Trans::Yes;
        const float* src = tr ? g.a + p0 * g.lda + i0 : g.a + i0 * g.lda + p0;
        kern.pack(src, tr ? 1 : g.lda, tr ? g.lda : 1, static_cast<int>(mc), kern.mr, kc, out);
    }
    void pack_b(const GemmArgs& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc, uint32_t* out) const {
        const bool tr = g.tb == Trans::Yes;
        const float* src = tr ? g.b + j0 * g.ldb + p0 : g.b + p0 * g.ldb + j0;
        kern.pack(src, tr ? g.ldb : 1, tr ? 1 : g.ldb, static_cast<int>(nc), kern.nr, kc, out);
    }
    void tiles(int64_t kc2, const uint32_t* pa, const uint32_t* pb, int64_t mc, int64_t nc, float* c, int64_t ldc,
               bool acc) const {
        run_tiles(kern.tile, kc2, pa, pb, mc, nc, kern.mr, kern.nr, c, ldc, acc);
    }
};

// A 64-byte aligned view of a buffer of at least n elements, grown, never shrunk (shrinking and regrowing would
// clear the regrown part on every call).
template <typename T>
T* aligned_buffer(std::vector<T>& v, size_t n) {
    if (v.size() < n + 64 / sizeof(T)) v.resize(n + 64 / sizeof(T));
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// C[i0 .. i0+m)[j0 .. j0+n) of the product: the GotoBLAS loops on one thread.
template <class Path>
void gemm_block(const GemmArgs& g, const Path& path, int64_t i0, int64_t m, int64_t j0, int64_t n) {
    using P = typename Path::Packed;
    const int MR = path.mr(), NR = path.nr();
    const int64_t d_max = Path::depth(Path::kc_max);
    thread_local std::vector<P> abuf, bbuf;
    P* pb = aligned_buffer(bbuf, static_cast<size_t>(d_max * ((std::min(kNc, n) + NR - 1) / NR * NR)));
    P* pa = aligned_buffer(abuf, static_cast<size_t>(d_max * ((std::min(kMc, m) + MR - 1) / MR * MR)));
    for (int64_t jc = 0; jc < n; jc += kNc) {
        const int64_t nc = std::min(kNc, n - jc);
        for (int64_t pc = 0; pc < g.k; pc += Path::kc_max) {
            const int64_t kc = std::min(Path::kc_max, g.k - pc);
            const bool acc = g.accumulate || pc > 0;
            path.pack_b(g, j0 + jc, nc, pc, kc, pb);
            for (int64_t ic = 0; ic < m; ic += kMc) {
                const int64_t mc = std::min(kMc, m - ic);
                path.pack_a(g, i0 + ic, mc, pc, kc, pa);
                path.tiles(Path::depth(kc), pa, pb, mc, nc, g.c + (i0 + ic) * g.ldc + j0 + jc, g.ldc, acc);
            }
        }
    }
}

}  // namespace

bool sgemm_has_bf16() { return kernels::active().sgemm_bf16.tile != nullptr; }

void sgemm_part(const GemmArgs& g, int ith, int nth) {
    if (g.m <= 0 || g.n <= 0) return;
    if (g.k <= 0) {  // an empty sum: C = 0 (or unchanged)
        if (!g.accumulate && ith == 0)
            for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.n, 0.0f);
        return;
    }
    const kernels::SgemmKernel& kern = g.kernel ? *g.kernel : kernels::active().sgemm;
    const kernels::SgemmBf16Kernel* bf = g.bf16 ? (g.bf16_kernel ? g.bf16_kernel : &kernels::active().sgemm_bf16) : nullptr;
    if (bf && !bf->tile) bf = nullptr;
    const int mr = bf ? bf->mr : kern.mr, nr = bf ? bf->nr : kern.nr;
    auto block = [&](int64_t i0, int64_t m, int64_t j0, int64_t n) {
        if (bf)
            gemm_block(g, Bf16Path{*bf}, i0, m, j0, n);
        else
            gemm_block(g, F32Path{kern}, i0, m, j0, n);
    };
    // Split the larger dimension between the threads, in whole tiles, so each thread packs only its share of
    // that operand.
    if (g.m >= g.n) {
        const int64_t tiles = (g.m + mr - 1) / mr;
        const int64_t b = std::min(g.m, tiles * ith / nth * mr), e = std::min(g.m, tiles * (ith + 1) / nth * mr);
        if (e > b) block(b, e - b, 0, g.n);
    } else {
        const int64_t tiles = (g.n + nr - 1) / nr;
        const int64_t b = std::min(g.n, tiles * ith / nth * nr), e = std::min(g.n, tiles * (ith + 1) / nth * nr);
        if (e > b) block(0, g.m, b, e - b);
    }
}

void sgemm(const GemmArgs& g, int n_threads) {
    int nt = n_threads > 0 ? n_threads : omp_get_num_procs();
    // A small product is done before a second thread would be awake (waking one costs microseconds, and far
    // more on a busy machine); the result is the same either way.
    constexpr double kMinFlopPerThread = 2e6;
    const double flop = 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
    nt = static_cast<int>(std::max(1.0, std::min<double>(nt, flop / kMinFlopPerThread)));
    if (nt == 1) {
        sgemm_part(g, 0, 1);
        return;
    }
#pragma omp parallel num_threads(nt)
    sgemm_part(g, omp_get_thread_num(), omp_get_num_threads());
}

void sgemm_naive(const GemmArgs& g) {
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
            double s = 0;
            for (int64_t k = 0; k < g.k; ++k) {
                float a = g.ta == Trans::No ? g.a[i * g.lda + k] : g.a[k * g.lda + i];
                float b = g.tb == Trans::No ? g.b[k * g.ldb + j] : g.b[j * g.ldb + k];
                if (g.bf16) a = bf16_to_f32(f32_to_bf16(a)), b = bf16_to_f32(f32_to_bf16(b));
                s += static_cast<double>(a) * b;
            }
            float& c = g.c[i * g.ldc + j];
            c = g.accumulate ? c + static_cast<float>(s) : static_cast<float>(s);
        }
}

}  // namespace hearth
