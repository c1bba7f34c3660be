// Run-time choice of the kernel table: CPUID says which instructions the CPU has, XGETBV says whether the OS
// saves the wider register state (YMM for AVX2, opmask + ZMM for AVX-512). This file is compiled for plain
// x86-64, like the rest of the binary; it never calls into avx2.cpp / avx512.cpp unless the CPU can run them.
#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tensor/kernels.h"

namespace hearth::kernels {
namespace {

struct CpuFeatures {
    bool avx2 = false;    // AVX2 + FMA + F16C + BMI2 with YMM state enabled: what avx2.cpp is compiled for
    bool avx512 = false;  // AVX-512 F/BW/VL/DQ/VNNI/BF16/VBMI + the above, with ZMM state enabled
};

uint64_t read_xcr0() {
    uint32_t lo = 0, hi = 0;
    // xgetbv with ecx = 0; written as bytes-free inline asm so that no -mxsave flag is needed.
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    const unsigned max_leaf = a;
    if (max_leaf < 7) return f;

    __cpuid_count(1, 0, a, b, c, d);
    const bool fma = c & (1u << 12);
    const bool osxsave = c & (1u << 27);
    const bool avx = c & (1u << 28);
    const bool f16c = c & (1u << 29);
    if (!osxsave || !avx) return f;

    const uint64_t xcr0 = read_xcr0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM

    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5);
    const bool bmi2 = b & (1u << 8);
    const bool avx512f = b & (1u << 16);
    const bool avx512dq = b & (1u << 17);
    const bool avx512bw = b & (1u << 30);
    const bool avx512vl = b & (1u << 31);
    const bool avx512vbmi = c & (1u << 1);
    const bool avx512vnni = c & (1u << 11);
    const unsigned max_sub7 = a;
    bool avx512bf16 = false;
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        avx512bf16 = a & (1u << 5);
    }

    f.avx2 = ymm_state && avx2 && fma && f16c && bmi2;
    f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vbmi && avx512vnni &&
               avx512bf16;
    return f;
}

const CpuFeatures& features() {
    static const CpuFeatures f = detect();  // thread-safe (C++11 magic statics)
    return f;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Ref: return "ref";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

Isa best_supported() {
    if (cpu_supports(Isa::Avx512)) return Isa::Avx512;
    if (cpu_supports(Isa::Avx2)) return Isa::Avx2;
    return Isa::Ref;
}

const KernelTable* choose_active() {
    Isa want = best_supported();
    if (const char* env = std::getenv("HEARTH_ISA"); env && *env) {
        Isa forced;
        bool known = true;
        if (std::strcmp(env, "ref") == 0)
            forced = Isa::Ref;
        else if (std::strcmp(env, "avx2") == 0)
            forced = Isa::Avx2;
        else if (std::strcmp(env, "avx512") == 0)
            forced = Isa::Avx512;
        else
            known = false;
        if (!known) {
            std::fprintf(stderr, "hearth: warning: HEARTH_ISA=%s is not one of ref, avx2, avx512; using %s\n", env,
                         isa_name(want));
        } else if (static_cast<int>(forced) > static_cast<int>(want)) {
            std::fprintf(stderr, "hearth: warning: HEARTH_ISA=%s is not supported by this CPU; using %s\n", env,
                         isa_name(want));
        } else {
            want = forced;
        }
    }
    return table_for(want);
}

}  // namespace

bool cpu_supports(Isa isa) {
    switch (isa) {
        case Isa::Ref: return true;
        case Isa::Avx2: return features().avx2;
        case Isa::Avx512: return features().avx512;
    }
    return false;
}

const KernelTable* table_for(Isa isa) {
    if (!cpu_supports(isa)) return nullptr;
    switch (isa) {
        case Isa::Ref: return &ref_table();
        case Isa::Avx2: return &avx2_table();
        case Isa::Avx512: return &avx512_table();
    }
    return nullptr;
}

const KernelTable& active() {
    static const KernelTable* const table = choose_active();  // initialised once, thread-safe
    return *table;
}

}  // namespace hearth::kernels
