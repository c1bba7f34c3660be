// Google Benchmark of the dispatched kernels, per ISA the CPU supports and per weight type:
//  * matvec/<isa>/<type>/<rows>x<n>/hot: decode-style mat-vec (nc = 1) on one weight matrix (after the first
//    pass it may sit in L2/L3); bytes/s = weight bytes streamed.
//  * matvec/<isa>/<type>/<rows>x<n>/cold: the same over a pool of copies of the matrix (>= 256 MiB in all), so
//    every pass reads its weights from DRAM, as decoding a whole model does. threads:2 splits the rows over
//    two threads (aggregate bytes/s over wall time; meaningless while other processes use the second core).
// Single-thread rates are per CPU second (this is a shared 2-vCPU VM: wall time includes other processes).
//  * batch/<isa>/<type>/8192x2048/nc16/{hot,cold}: batched decode, 16 activation columns against one matrix
//    (hot: after the first pass it sits in L3) or against weights from DRAM (cold, as the cold mat-vec); GOP/s
//    as for gemm.
//  * gemm/<isa>/<type>/2048x2048/nc64: prefill-style product with 64 activation columns; GOP/s counts
//    2 * rows * n * nc (one multiply and one add per weight per column).
//  * quantize_act/<isa>: activation quantization, bytes/s of float input.
// Run: ./build/hearth_kernel_bench [--benchmark_filter=matvec/avx512/Q4_0]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "tensor/kernels.h"

namespace hearth {
namespace {

using kernels::Isa;
using kernels::GemmFn;
using kernels::KernelTable;

const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q6_K, DType::Q4_1,
                        DType::Q5_1, DType::IQ4_NL, DType::Q2_K, DType::Q3_K, DType::Q5_K, DType::F16,
                        DType::BF16, DType::F32};

// Random weights of a rows x n matrix: random code bytes with finite scales (quantized types), or normal
// values (float types). Speed does not depend on the values; this is much faster than quantizing.
std::vector<uint8_t> random_matrix(DType t, int64_t rows, int64_t n, uint32_t seed) {
    const size_t rb = row_bytes(t, n);
    std::vector<uint8_t> w(rb * size_t(rows));
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
        std::vector<float> row(static_cast<size_t>(n));
        for (int64_t r = 0; r < rows; ++r) {
            for (auto& x : row) x = nd(rng);
            kernels::quantize_row(t, row.data(), w.data() + size_t(r) * rb, n);
        }
        return w;
    }
    for (size_t i = 0; i + 4 <= w.size(); i += 4) {
        const uint32_t v = uint32_t(rng());
        std::memcpy(w.data() + i, &v, 4);
    }
    const DTypeInfo& info = dtype_info(t);
    const int64_t nblocks = int64_t(w.size()) / info.block_bytes;
    for (int64_t b = 0; b < nblocks; ++b)
        for (int off : f16_scale_offsets(t)) {
            const f16_t h = f32_to_f16(nd(rng));
            std::memcpy(w.data() + b * info.block_bytes + off, &h, 2);
        }
    return w;
}

std::vector<uint8_t> random_act(DType t, int64_t n, int nc, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const size_t ab = kernels::act_row_bytes(t, n);
    std::vector<uint8_t> a(ab * size_t(nc));
    std::vector<float> x(static_cast<size_t>(n));
    for (int c = 0; c < nc; ++c) {
        for (auto& v : x) v = nd(rng);
        if (kernels::act_kind(t) == kernels::ActKind::F32)
            std::memcpy(a.data() + size_t(c) * ab, x.data(), ab);
        else
            kernels::quantize_act_ref(x.data(), reinterpret_cast<BlockQ8A*>(a.data() + size_t(c) * ab), n);
    }
    return a;
}

// Weights shared by the threads of one benchmark. Only the most recent benchmark's data is kept (the cold
// pools are 256 MiB each); the threads of a run build it once, under the mutex.
struct MatvecData {
    DType t;
    int64_t rows, n;
    int nc;
    bool cold;
    std::vector<uint8_t> pool;  // `copies` consecutive copies of the matrix
    int copies = 1;
    std::vector<uint8_t> act;
};
std::mutex g_data_mu;
std::shared_ptr<MatvecData> g_data;

std::shared_ptr<MatvecData> matvec_data(DType t, int64_t rows, int64_t n, int nc, bool cold) {
    std::lock_guard<std::mutex> lock(g_data_mu);
    if (g_data && g_data->t == t && g_data->rows == rows && g_data->n == n && g_data->nc == nc && g_data->cold == cold)
        return g_data;
    g_data.reset();
    auto d = std::make_shared<MatvecData>();
    d->t = t;
    d->rows = rows;
    d->n = n;
    d->nc = nc;
    d->cold = cold;
    const size_t mat_bytes = row_bytes(t, n) * size_t(rows);
    const std::vector<uint8_t> m = random_matrix(t, rows, n, 1);
    d->copies = cold ? int((size_t(256) << 20) / mat_bytes) + 1 : 1;
    if (cold && d->copies < 2) d->copies = 2;
    d->pool.resize(mat_bytes * size_t(d->copies));
    for (int i = 0; i < d->copies; ++i) std::memcpy(d->pool.data() + size_t(i) * mat_bytes, m.data(), mat_bytes);
    d->act = random_act(t, n, nc, 2);
    g_data = d;
    return d;
}

// nc > 1: batched decode (a few activation columns against weights streamed from DRAM); GOP/s as for gemm.
void bm_matvec(benchmark::State& state, const KernelTable* tab, DType t, int64_t rows, int64_t n, bool cold, int nc) {
    const size_t rb = row_bytes(t, n);
    const size_t mat_bytes = rb * size_t(rows);
    const size_t ab = kernels::act_row_bytes(t, n);
    const std::shared_ptr<MatvecData> data = matvec_data(t, rows, n, nc, cold);
    const GemmFn gemm = tab->gemm[static_cast<uint32_t>(t)];
    const int nthreads = state.threads();
    const int64_t r0 = rows * state.thread_index() / nthreads, r1 = rows * (state.thread_index() + 1) / nthreads;
    std::vector<float> out(static_cast<size_t>(rows) * size_t(nc));
    int it = 0;
    for (auto _ : state) {
        const uint8_t* w = data->pool.data() + size_t(it) * mat_bytes;
        gemm(n, w + size_t(r0) * rb, rb, data->act.data(), ab, out.data() + r0 * nc, size_t(nc), int(r1 - r0), nc);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        if (++it == data->copies) it = 0;
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(rb) * (r1 - r0));
    if (nc > 1) {
        const double ops = 2.0 * double(r1 - r0) * double(n) * double(nc);
        state.counters["GOP/s"] = benchmark::Counter(ops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
    }
}

void bm_gemm(benchmark::State& state, const KernelTable* tab, DType t, int64_t rows, int64_t n, int nc) {
    const size_t rb = row_bytes(t, n);
    const std::vector<uint8_t> w = random_matrix(t, rows, n, 3);
    const std::vector<uint8_t> act = random_act(t, n, nc, 4);
    const size_t ab = kernels::act_row_bytes(t, n);
    std::vector<float> out(size_t(rows) * size_t(nc));
    const GemmFn gemm = tab->gemm[static_cast<uint32_t>(t)];
    for (auto _ : state) {
        gemm(n, w.data(), rb, act.data(), ab, out.data(), size_t(nc), int(rows), nc);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    const double ops = 2.0 * double(rows) * double(n) * double(nc);
    state.counters["GOP/s"] = benchmark::Counter(ops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(rb) * rows);
}

void bm_quantize_act(benchmark::State& state, const KernelTable* tab) {
    const int64_t n = 4096;
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    std::vector<BlockQ8A> y(size_t(n / 32));
    for (auto _ : state) {
        tab->quantize_act(x.data(), y.data(), n);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * n * 4);
}

const char* isa_str(Isa isa) { return isa == Isa::Avx2 ? "avx2" : isa == Isa::Avx512 ? "avx512" : "ref"; }

struct Registrar {
    Registrar() {
        for (Isa isa : {Isa::Avx512, Isa::Avx2}) {
            if (!kernels::cpu_supports(isa)) continue;
            const KernelTable* tab = kernels::table_for(isa);
            const std::string in = isa_str(isa);
            benchmark::RegisterBenchmark(("quantize_act/" + in).c_str(), bm_quantize_act, tab);
            for (DType t : kTypes) {
                const std::string tn = dtype_name(t);
                // Single-thread figures use CPU time (robust to other processes on this shared 2-core VM); the
                // two-thread run needs wall time (aggregate bytes over elapsed time).
                for (int64_t rows : {2048, 8192}) {
                    const std::string shape = std::to_string(rows) + "x2048";
                    benchmark::RegisterBenchmark(("matvec/" + in + "/" + tn + "/" + shape + "/hot").c_str(), bm_matvec,
                                                 tab, t, rows, int64_t(2048), false, 1);
                }
                benchmark::RegisterBenchmark(("matvec/" + in + "/" + tn + "/8192x2048/cold").c_str(), bm_matvec, tab,
                                             t, int64_t(8192), int64_t(2048), true, 1);
                benchmark::RegisterBenchmark(("matvec/" + in + "/" + tn + "/8192x2048/cold").c_str(), bm_matvec, tab,
                                             t, int64_t(8192), int64_t(2048), true, 1)
                    ->Threads(2)
                    ->UseRealTime();
                benchmark::RegisterBenchmark(("batch/" + in + "/" + tn + "/8192x2048/nc16/hot").c_str(), bm_matvec,
                                             tab, t, int64_t(8192), int64_t(2048), false, 16);
                benchmark::RegisterBenchmark(("batch/" + in + "/" + tn + "/8192x2048/nc16/cold").c_str(), bm_matvec,
                                             tab, t, int64_t(8192), int64_t(2048), true, 16);
                benchmark::RegisterBenchmark(("gemm/" + in + "/" + tn + "/2048x2048/nc64").c_str(), bm_gemm, tab, t,
                                             int64_t(2048), int64_t(2048), 64)
                    ->Unit(benchmark::kMillisecond);
            }
        }
    }
};
const Registrar registrar;

}  // namespace
}  // namespace hearth
