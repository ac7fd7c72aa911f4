// tests/emu/emu_host.h — proteus's CUDA backend host side for an emulation test that keeps a .cu file's
// launchers (tests/emu/fused_norm_emu.cpp; the launchers then pick grids, vector paths and workspaces as
// on the GPU, and their `<<<...>>>` launches run on tests/emu/emu_warp.h, which must be included first).
// Defines, with C linkage, what src/kernels/cuda/pt_cuda_internal.h and pt_cuda.h declare and the
// launchers call; anything else they call is a link error (add it here, with the same meaning):
//   pt_cuda_compute_stream, pt_cuda_copy_stream   a dummy stream (launches run at once, in order)
//   pt_cuda_sm_count                              g_pt_emu_sm_count: 132 (H100 / H200 SXM); a test sets
//                                                 it lower to make pt_cuda_blocks cap grids, so that the
//                                                 grid-stride loops take more than one step
//   pt_cuda_launch_check                          counts the checks (g_pt_emu_launch_checks)
//   pt_cuda_set_pending, pt_cuda_check_pending    a pending message, returned once as PT_ERR_DEVICE
//   pt_cuda_fail                                  PT_ERR_DEVICE naming the call
//   pt_cuda_alloc, pt_cuda_free                   workspaces as host memory: NaN bytes (0xff) when
//                                                 handed out (reads before writes show), guard zones
//                                                 checked and the size matched at the free;
//                                                 pt_emu_live_workspaces() counts the ones not freed
// and, for the CPU oracle's src/kernels/dispatch.c (linked into the test with src/host/status.c),
// pt_dtype_name (src/host/tensor.c's, which would pull in the whole tensor library).
#ifndef PT_EMU_HOST_H
#define PT_EMU_HOST_H

#ifndef PT_EMU_WARP_H
#error "include emu_warp.h before emu_host.h"
#endif

#include <cstdarg>
#include <map>

extern "C" {
#include "../pt_dispatch.h" /* pt_dtype_name's enum (via pt_tensor.h) */
#include "pt_cuda_internal.h"
}

static int g_pt_emu_sm_count = 132;
static unsigned long g_pt_emu_launch_checks;
static char g_pt_emu_pending[512];
static char g_pt_emu_stream_tag;

constexpr size_t PT_EMU_WS_GUARD = 256; // bytes of 0xbf on each side of a workspace
struct pt_emu_ws {
    unsigned char *base;
    size_t n;
};
static std::map<void *, pt_emu_ws> g_pt_emu_ws;

[[maybe_unused]] static size_t pt_emu_live_workspaces() { return g_pt_emu_ws.size(); }

extern "C" {
cudaStream_t pt_cuda_compute_stream(void) { return (cudaStream_t)(void *)&g_pt_emu_stream_tag; }
cudaStream_t pt_cuda_copy_stream(void) { return (cudaStream_t)(void *)&g_pt_emu_stream_tag; }
int pt_cuda_sm_count(void) { return g_pt_emu_sm_count; }
void pt_cuda_launch_check(const char *what) {
    (void)what;
    g_pt_emu_launch_checks++;
}
void pt_cuda_set_pending(const char *fmt, ...) {
    if (g_pt_emu_pending[0]) return; // the first one wins
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_pt_emu_pending, sizeof g_pt_emu_pending, fmt, ap);
    va_end(ap);
}
pt_status pt_cuda_check_pending(void) {
    if (!g_pt_emu_pending[0]) return PT_OK;
    const pt_status s = PT_FAIL(PT_ERR_DEVICE, "%s", g_pt_emu_pending);
    g_pt_emu_pending[0] = 0;
    return s;
}
pt_status pt_cuda_fail(cudaError_t err, const char *call, const char *file, int line) {
    return pt_error(PT_ERR_DEVICE, file, line, "%s: %s (emulated)", call, cudaGetErrorName(err));
}
pt_status pt_cuda_alloc(void **ptr, size_t nbytes, int device) {
    if (device != 0) return PT_FAIL(PT_ERR_DEVICE, "pt_cuda_alloc: device %d (the emulator has device 0)", device);
    unsigned char *base = (unsigned char *)malloc(nbytes + 2 * PT_EMU_WS_GUARD);
    if (!base) return PT_FAIL(PT_ERR_OOM, "pt_cuda_alloc: %zu bytes (emulated)", nbytes);
    memset(base, 0xbf, PT_EMU_WS_GUARD);
    memset(base + PT_EMU_WS_GUARD, 0xff, nbytes);
    memset(base + PT_EMU_WS_GUARD + nbytes, 0xbf, PT_EMU_WS_GUARD);
    *ptr = base + PT_EMU_WS_GUARD;
    g_pt_emu_ws[*ptr] = {base, nbytes};
    return PT_OK;
}
void pt_cuda_free(void *ptr, size_t nbytes, int device) {
    (void)device;
    if (!ptr) return;
    auto it = g_pt_emu_ws.find(ptr);
    const char *bad = nullptr;
    if (it == g_pt_emu_ws.end()) bad = "a pointer pt_cuda_alloc did not return (or freed twice)";
    else if (it->second.n != nbytes) bad = "a size other than the allocation's";
    else {
        const unsigned char *b = it->second.base;
        for (size_t i = 0; i < PT_EMU_WS_GUARD && !bad; i++)
            if (b[i] != 0xbf || b[PT_EMU_WS_GUARD + nbytes + i] != 0xbf) bad = "a workspace written outside its bytes";
    }
    if (bad) {
        fprintf(stderr, PT_EMU_NAME ": pt_cuda_free(%p, %zu): %s\nFAIL\n", ptr, nbytes, bad);
        exit(1);
    }
    free(it->second.base);
    g_pt_emu_ws.erase(it);
}
const char *pt_dtype_name(pt_dtype dt) {
    switch (dt) {
    case PT_F32: return "f32";
    case PT_F64: return "f64";
    case PT_BF16: return "bf16";
    default: return "(another dtype)";
    }
}
}

// ---- CUDA graph capture (src/kernels/cuda/graph.c's side; added for tests/emu/optim_emu.cpp)
//   pt_cuda_graph_capturing   g_pt_emu_capturing: -1 (no capture, the default); a test sets a device
//                             (0) to check what a launcher does inside a capture
//   pt_cuda_capture_forbid    PT_OK outside a capture; inside, graph.c's PT_ERR_UNSUPPORTED message
static int g_pt_emu_capturing = -1;
extern "C" {
int pt_cuda_graph_capturing(void) { return g_pt_emu_capturing; }
pt_status pt_cuda_capture_forbid(const char *what, const char *fix) {
    if (g_pt_emu_capturing < 0) return PT_OK;
    return PT_FAIL(PT_ERR_UNSUPPORTED, "%s cannot run inside a CUDA graph capture; %s", what, fix);
}
}

#endif
