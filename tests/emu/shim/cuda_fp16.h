// tests/emu/shim/cuda_fp16.h — CUDA's __half for the CPU emulator (overview: tests/emu/shim/cuda_runtime.h):
// the storage type and its conversions, no half arithmetic. __float2half_rn rounds to nearest even
// with IEEE overflow to ±inf and gradual underflow, like the GPU; NaN stays a quiet NaN with the top
// payload bits. (src/kernels/cuda/pt_cuda_common.cuh maps NaN itself before calling it.)
#ifndef PT_EMU_SHIM_CUDA_FP16_H
#define PT_EMU_SHIM_CUDA_FP16_H

#include "cuda_runtime.h"

extern "C++" {

struct __half {
    unsigned short x;
};

static inline unsigned short pt_emu_f32_to_f16_bits(float f) {
    const uint32_t u = pt_emu_f2u(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); /* >= 65520 (and inf): ±inf */
    if (a < 0x38800000u) {                                           /* below 2^-14: subnormal or zero */
        if (a <= 0x33000000u) return (unsigned short)sign;           /* <= 2^-25 (a tie goes to even 0) */
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const int sh = 126 - (int)(a >> 23); /* f / 2^-24 = m · 2^-sh, 14 <= sh <= 24 */
        uint32_t q = m >> sh;
        const uint32_t rem = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (unsigned short)(sign | q);
    }
    const uint32_t r = a - 0x38000000u; /* exponent rebiased from 127 to 15 */
    uint32_t q = r >> 13;
    const uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* a carry moves into the exponent */
    return (unsigned short)(sign | q);
}

static inline float pt_emu_f16_bits_to_f32(unsigned short h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return pt_emu_u2f(sign | 0x7f800000u | (m << 13));
    if (e == 0) return (sign ? -1.0f : 1.0f) * ldexpf((float)m, -24); /* zero or subnormal: exact */
    return pt_emu_u2f(sign | ((e + 112u) << 23) | (m << 13));
}

static inline __half __float2half_rn(float f) { return __half{pt_emu_f32_to_f16_bits(f)}; }
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) { return pt_emu_f16_bits_to_f32(h.x); }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short u) { return __half{u}; }

} // extern "C++"

#endif
