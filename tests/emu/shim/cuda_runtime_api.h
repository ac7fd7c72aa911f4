// tests/emu/shim/cuda_runtime_api.h — the CUDA runtime API as the CPU emulator sees it: the host calls
// that proteus's launchers make, acting on host memory (the emulator's "device memory" is the host's).
// Part of the emulation shim (tests/emu/shim/cuda_runtime.h has the overview); included by the real
// src/kernels/cuda/pt_cuda_internal.h, which may put it inside extern "C" (so: no overloads here).
//
// Semantics: every emulated launch runs to completion at its call (tests/emu/emu_warp.h), so streams are
// program order: the *Async calls act at once, synchronisation is a no-op that succeeds, and
// cudaGetLastError is always cudaSuccess (an invalid launch fails the test at the launch instead).
// Defined: cudaGetDevice, cudaSetDevice, cudaMemset(Async), cudaMemcpy(Async), cudaMemcpyPeerAsync,
// cudaStreamSynchronize, cudaDeviceSynchronize, cudaGetLastError, cudaPeekAtLastError,
// cudaGetErrorString, cudaGetErrorName. Anything else a kernel file calls is a compile error here: add
// it with the same host-memory meaning (and list it above).
#ifndef PT_EMU_SHIM_CUDA_RUNTIME_API_H
#define PT_EMU_SHIM_CUDA_RUNTIME_API_H

#include <stddef.h>
#include <string.h>

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

static inline cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
static inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
static inline cudaError_t cudaMemset(void *p, int value, size_t n) {
    memset(p, value, n);
    return cudaSuccess;
}
static inline cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s) {
    (void)s;
    memset(p, value, n);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k) {
    (void)k;
    memmove(dst, src, n);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s) {
    (void)k, (void)s;
    memmove(dst, src, n);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpyPeerAsync(void *dst, int dd, const void *src, int sd, size_t n, cudaStream_t s) {
    (void)dd, (void)sd, (void)s;
    memmove(dst, src, n);
    return cudaSuccess;
}
static inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
static inline const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    }
    return "cudaErrorUnknown";
}
static inline const char *cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

#endif
