/* tests/emu/elementwise_emu_tensor.c — src/host/tensor.c compiled into the elementwise_emu test
 * (tests/emu/elementwise_emu.cpp), whose CPU oracle for casts is the tensor library's own CPU copy
 * (pt_tensor_copy_ on CPU tensors: pt_load / pt_store, the bf16 and f16 roundings), and whose bf16
 * oracle rounds with pt_f32_to_bf16.
 *
 * tests/emu/emu_host.h defines pt_dtype_name for the dispatch table (so that the other emulation tests
 * need not link tensor.c); tensor.c's own definition is renamed here so that both can be linked. Of the
 * rest of the library, tensor.c needs only pt_node_release (autograd.c), for tensors with a grad_fn:
 * the test makes none, so the definition below reports a call as a failure.
 */
#define pt_dtype_name pt_emu_tensor_dtype_name
#include "../../src/host/tensor.c"
#undef pt_dtype_name

#include <stdio.h>

void pt_node_release(pt_node *n) {
    (void)n;
    fprintf(stderr, "elementwise_emu: pt_node_release called (a tensor with an autograd node; the test makes "
                    "none)\nFAIL\n");
    exit(1);
}
