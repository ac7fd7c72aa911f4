/* pt_autograd.h — the dynamic tape.
 *
 * Each differentiable op, after computing its output, calls pt_autograd_record(): if grad mode is
 * on and some input requires grad, a pt_node is attached to the output (out->grad_fn) holding
 * references to the inputs, the tensors the backward needs (saved) and a few scalar arguments.
 * pt_backward(root, grad) walks the graph in reverse topological order, calls each node's backward
 * with the gradient of its output, and accumulates into the inputs: leaves get .grad (+=, so
 * gradient accumulation across micro-steps works), intermediates get a temporary gradient that is
 * dropped after use (kept if retain_grad). After backward the graph's saved tensors are released;
 * a second backward through it is an error that says so.
 *
 * Backward functions are written with the ops of pt_ops.h while grad mode is off.
 */
#ifndef PT_AUTOGRAD_H
#define PT_AUTOGRAD_H

#include "pt_tensor.h"

#define PT_NODE_MAX_INPUTS 8
#define PT_NODE_MAX_SAVED 8

typedef struct pt_node pt_node;
/* grad_in[i] receives a NEW reference to the gradient for inputs[i] (shape of inputs[i]), or NULL
 * when that input needs no gradient (check pt_node_needs_grad(node, i)). */
typedef pt_status (*pt_backward_fn)(pt_node *node, pt_tensor *grad_out, pt_tensor **grad_in);

struct pt_node {
    int refcount;
    const char *name;
    pt_backward_fn backward;
    int n_inputs;
    pt_tensor *inputs[PT_NODE_MAX_INPUTS];
    int n_saved;
    pt_tensor *saved[PT_NODE_MAX_SAVED];
    double f[8];     /* scalar arguments */
    int64_t i[8];    /* integer arguments (dims, sizes) */
    void *ctx;       /* op-specific data, freed with ctx_free */
    void (*ctx_free)(void *ctx);
    int released;    /* saved tensors already freed by a backward */
};

/* Grad mode (thread-local). pt_grad_set_enabled returns the previous value. */
int pt_grad_enabled(void);
int pt_grad_set_enabled(int on);

/* Attaches a node to out if grad mode is on and any input requires grad. *node_out (optional)
 * gets the node (or NULL if none recorded) so the caller can fill f/i/ctx. inputs may contain NULL
 * (non-tensor argument slots). Sets out->requires_grad accordingly. */
pt_status pt_autograd_record(pt_tensor *out, const char *name, pt_backward_fn fn, int n_inputs,
                             pt_tensor *const *inputs, int n_saved, pt_tensor *const *saved,
                             pt_node **node_out);
int pt_node_needs_grad(const pt_node *node, int i);
void pt_node_retain(pt_node *n);
void pt_node_release(pt_node *n);

/* Runs backward from root. grad may be NULL only when root has one element (then 1 is used). */
pt_status pt_backward(pt_tensor *root, pt_tensor *grad);
/* Sets .grad of t to NULL (zero_grad). */
void pt_tensor_zero_grad(pt_tensor *t);
/* New leaf that shares t's storage and has no grad_fn and requires_grad = 0. */
pt_status pt_tensor_detach(pt_tensor **out, pt_tensor *t);

#endif
