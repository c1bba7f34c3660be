// Single-precision matrix products for training: C = op(A) · op(B) with either operand transposed, row-major,
// over the register tiles of the kernel table (tensor/kernels.h: SgemmKernel). Written by hand: the products
// must run inside hearth's own OpenMP team (no nested BLAS thread pool), and each element of C is summed over K
// in a fixed order whatever the thread count, which makes training deterministic and lets ranks that split a
// batch reproduce one process.
#pragma once
#include <cstdint>

namespace hearth {
namespace kernels {
struct SgemmKernel;
struct SgemmBf16Kernel;
}

enum class Trans : uint8_t { No, Yes };

struct GemmArgs {
    Trans ta = Trans::No, tb = Trans::No;
    int64_t m = 0, n = 0, k = 0;
    const float* a = nullptr;  // op(A) is [m][k]: A is [m][k] (ta No) or [k][m] (ta Yes), rows lda apart
    int64_t lda = 0;
    const float* b = nullptr;  // op(B) is [k][n]: B is [k][n] (tb No) or [n][k] (tb Yes), rows ldb apart
    int64_t ldb = 0;
    float* c = nullptr;  // [m][n], rows ldc apart
    int64_t ldc = 0;
    bool accumulate = false;  // C += op(A) op(B), else C = op(A) op(B)
    const kernels::SgemmKernel* kernel = nullptr;  // the register tile; null: the active table's
    // Multiply in bfloat16 (each input rounded to nearest even, sums in float) with the table's bf16 tile; a
    // table without one computes in float.
    bool bf16 = false;
    const kernels::SgemmBf16Kernel* bf16_kernel = nullptr;  // null: the active table's
};
// Whether bf16 products run natively here (AVX512-BF16).
bool sgemm_has_bf16();

// Thread ith of nth computes its share of C (disjoint from the others'); every thread of a team calls it with
// the same arguments. No barrier inside.
void sgemm_part(const GemmArgs& g, int ith, int nth);
// The whole product on a team of n_threads (0: every core).
void sgemm(const GemmArgs& g, int n_threads = 0);
// The plain triple loop (double accumulation; inputs rounded to bf16 first when g.bf16), for tests.
void sgemm_naive(const GemmArgs& g);

}  // namespace hearth
