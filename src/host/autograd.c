/* autograd.c — the dynamic tape (see pt_autograd.h for the model).
 *
 * Backward order: a depth-first post-order over tensors reachable through grad_fn->inputs, processed
 * in reverse, so every tensor's gradient is complete before its node runs. Gradients of
 * intermediates live in a small pointer-keyed hash map for the duration of the call.
 * Tested by tests/lua/test_autograd.lua and the gradient checks of every op.
 */
#include "pt_autograd.h"

#include <stdlib.h> /* calloc, free, realloc */
#include <string.h> /* memset */

#include "../kernels/pt_ops.h" /* pt_add_, pt_tensor ops used to accumulate gradients */

static _Thread_local int pt_grad_off; /* 0 = enabled (default) */

int pt_grad_enabled(void) { return !pt_grad_off; }
int pt_grad_set_enabled(int on) {
    int prev = !pt_grad_off;
    pt_grad_off = !on;
    return prev;
}

void pt_node_retain(pt_node *n) { __atomic_add_fetch(&n->refcount, 1, __ATOMIC_RELAXED); }

static void pt_node_release_saved(pt_node *n) {
    for (int i = 0; i < n->n_saved; i++) {
        pt_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    if (n->ctx && n->ctx_free) n->ctx_free(n->ctx);
    n->ctx = NULL;
    n->released = 1;
}

void pt_node_release(pt_node *n) {
    if (!n || __atomic_sub_fetch(&n->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (!n->released) pt_node_release_saved(n);
    for (int i = 0; i < n->n_inputs; i++) pt_tensor_release(n->inputs[i]);
    free(n);
}

int pt_node_needs_grad(const pt_node *node, int i) {
    return i < node->n_inputs && node->inputs[i] && node->inputs[i]->requires_grad;
}

pt_status pt_autograd_record(pt_tensor *out, const char *name, pt_backward_fn fn, int n_inputs,
                             pt_tensor *const *inputs, int n_saved, pt_tensor *const *saved,
                             pt_node **node_out) {
    if (node_out) *node_out = NULL;
    out->requires_grad = 0;
    if (pt_grad_off) return PT_OK;
    int any = 0;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && inputs[i]->requires_grad) any = 1;
    if (!any) return PT_OK;
    if (n_inputs > PT_NODE_MAX_INPUTS || n_saved > PT_NODE_MAX_SAVED)
        return PT_FAIL(PT_ERR_VALUE, "%s: too many autograd inputs (%d) or saved tensors (%d)", name, n_inputs,
                       n_saved);
    pt_node *n = calloc(1, sizeof *n);
    if (!n) return PT_FAIL(PT_ERR_OOM, "out of host memory recording %s", name);
    n->refcount = 1;
    n->name = name;
    n->backward = fn;
    n->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++) {
        n->inputs[i] = inputs[i];
        if (inputs[i]) pt_tensor_retain(inputs[i]);
    }
    n->n_saved = n_saved;
    for (int i = 0; i < n_saved; i++) {
        n->saved[i] = saved[i];
        if (saved[i]) pt_tensor_retain(saved[i]);
    }
    if (out->grad_fn) pt_node_release(out->grad_fn);
    out->grad_fn = n;
    out->requires_grad = 1;
    if (node_out) *node_out = n;
    return PT_OK;
}

void pt_tensor_zero_grad(pt_tensor *t) {
    if (t->grad) pt_tensor_release(t->grad);
    t->grad = NULL;
}

pt_status pt_tensor_detach(pt_tensor **out, pt_tensor *t) {
    return pt_tensor_view_of(out, t, t->ndim, t->shape, t->stride, t->offset);
}

/* ---- pointer map tensor -> gradient ---- */
typedef struct {
    pt_tensor **keys;
    pt_tensor **vals;
    size_t cap, n;
} pt_gmap;

static size_t pt_hash_ptr(const void *p, size_t cap) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static pt_status pt_gmap_grow(pt_gmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    pt_tensor **k = calloc(ncap, sizeof *k), **v = calloc(ncap, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return PT_FAIL(PT_ERR_OOM, "out of host memory in backward");
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t h = pt_hash_ptr(m->keys[i], ncap);
            while (k[h]) h = (h + 1) & (ncap - 1);
            k[h] = m->keys[i];
            v[h] = m->vals[i];
        }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = ncap;
    return PT_OK;
}

/* Returns the slot for key (inserting an empty one). */
static pt_status pt_gmap_slot(pt_gmap *m, pt_tensor *key, pt_tensor ***slot) {
    if ((m->n + 1) * 2 > m->cap) PT_TRY(pt_gmap_grow(m));
    size_t h = pt_hash_ptr(key, m->cap);
    while (m->keys[h] && m->keys[h] != key) h = (h + 1) & (m->cap - 1);
    if (!m->keys[h]) {
        m->keys[h] = key;
        m->n++;
    }
    *slot = &m->vals[h];
    return PT_OK;
}

static int pt_gmap_has(const pt_gmap *m, pt_tensor *key) {
    if (!m->cap) return 0;
    size_t h = pt_hash_ptr(key, m->cap);
    while (m->keys[h]) {
        if (m->keys[h] == key) return 1;
        h = (h + 1) & (m->cap - 1);
    }
    return 0;
}

static void pt_gmap_free(pt_gmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->vals[i]) pt_tensor_release(m->vals[i]);
    free(m->keys);
    free(m->vals);
}

/* Adds g into *slot (takes the caller's reference to g). The stored gradient is always a tensor
 * this function owns exclusively, so it can be accumulated in place. */
static pt_status pt_accumulate(pt_tensor **slot, pt_tensor *g, const pt_tensor *like) {
    if (g->ndim != like->ndim || memcmp(g->shape, like->shape, sizeof(int64_t) * (size_t)g->ndim)) {
        char a[128], b[128];
        pt_tensor_release(g);
        return PT_FAIL(PT_ERR_SHAPE, "backward produced a gradient of shape %s for a tensor of shape %s",
                       pt_shape_str(g->ndim, g->shape, a, sizeof a), pt_shape_str(like->ndim, like->shape, b, sizeof b));
    }
    if (!*slot) {
        if (g->refcount == 1 && g->storage->refcount == 1 && pt_tensor_is_contiguous(g) && g->dtype == like->dtype) {
            *slot = g;
            return PT_OK;
        }
        pt_status st = pt_tensor_to(slot, g, like->dtype, like->device, 1);
        pt_tensor_release(g);
        return st;
    }
    pt_status st = pt_add_(*slot, g, 1.0);
    pt_tensor_release(g);
    return st;
}

typedef struct {
    pt_tensor **items;
    size_t n, cap;
} pt_tvec;

static pt_status pt_tvec_push(pt_tvec *v, pt_tensor *t) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        pt_tensor **p = realloc(v->items, nc * sizeof *p);
        if (!p) return PT_FAIL(PT_ERR_OOM, "out of host memory in backward");
        v->items = p;
        v->cap = nc;
    }
    v->items[v->n++] = t;
    return PT_OK;
}

/* Iterative post-order DFS. `seen` marks visited tensors (value slot unused). */
static pt_status pt_topo(pt_tensor *root, pt_tvec *order) {
    pt_gmap seen = {0};
    pt_tvec stack = {0};
    pt_tvec istack = {0}; /* parallel stack of next-input indices, stored as (pt_tensor*)(uintptr_t) */
    pt_status st = PT_OK;
    pt_tensor **slot;
    if ((st = pt_gmap_slot(&seen, root, &slot))) goto done;
    if ((st = pt_tvec_push(&stack, root)) || (st = pt_tvec_push(&istack, (pt_tensor *)(uintptr_t)0))) goto done;
    while (stack.n) {
        pt_tensor *t = stack.items[stack.n - 1];
        uintptr_t next = (uintptr_t)istack.items[istack.n - 1];
        pt_node *node = t->grad_fn;
        int pushed = 0;
        while (node && (int)next < node->n_inputs) {
            pt_tensor *in = node->inputs[next++];
            if (in && in->requires_grad && !pt_gmap_has(&seen, in)) {
                istack.items[istack.n - 1] = (pt_tensor *)next;
                if ((st = pt_gmap_slot(&seen, in, &slot))) goto done;
                if ((st = pt_tvec_push(&stack, in)) || (st = pt_tvec_push(&istack, (pt_tensor *)(uintptr_t)0)))
                    goto done;
                pushed = 1;
                break;
            }
        }
        if (pushed) continue;
        stack.n--;
        istack.n--;
        if ((st = pt_tvec_push(order, t))) goto done;
    }
done:
    free(seen.keys);
    free(seen.vals);
    free(stack.items);
    free(istack.items);
    return st;
}

pt_status pt_backward(pt_tensor *root, pt_tensor *grad) {
    if (!root->requires_grad)
        return PT_FAIL(PT_ERR_VALUE, "backward: the tensor does not require grad (no parameter with "
                                     "requires_grad took part in computing it, or it was computed under no_grad)");
    pt_tensor *g0 = NULL;
    if (grad) {
        if (grad->ndim != root->ndim || memcmp(grad->shape, root->shape, sizeof(int64_t) * (size_t)root->ndim)) {
            char a[128], b[128];
            return PT_FAIL(PT_ERR_SHAPE, "backward: gradient shape %s does not match tensor shape %s",
                           pt_shape_str(grad->ndim, grad->shape, a, sizeof a),
                           pt_shape_str(root->ndim, root->shape, b, sizeof b));
        }
        PT_TRY(pt_tensor_to(&g0, grad, root->dtype, root->device, 1));
    } else {
        if (pt_tensor_numel(root) != 1) {
            char a[128];
            return PT_FAIL(PT_ERR_SHAPE, "backward: implicit gradient needs a one-element tensor, got shape %s "
                                         "(pass a gradient)", pt_shape_str(root->ndim, root->shape, a, sizeof a));
        }
        PT_TRY(pt_tensor_full(&g0, root->dtype, root->device, root->ndim, root->shape, 1.0));
    }
    int prev = pt_grad_set_enabled(0);
    pt_tvec order = {0};
    pt_gmap grads = {0};
    pt_status st = pt_topo(root, &order);
    pt_tensor **slot;
    if (!st) st = pt_gmap_slot(&grads, root, &slot);
    if (!st) {
        *slot = g0;
        g0 = NULL;
    }
    for (size_t k = order.n; k-- > 0 && !st;) {
        pt_tensor *t = order.items[k];
        pt_tensor **gs;
        if ((st = pt_gmap_slot(&grads, t, &gs))) break;
        pt_tensor *g = *gs;
        if (!g) continue; /* no gradient flowed here */
        *gs = NULL;       /* we own g now; gs is invalid once the map grows below */
        pt_node *node = t->grad_fn;
        if (!node) { /* leaf: accumulate into .grad */
            st = pt_accumulate(&t->grad, g, t);
            continue;
        }
        if (node->released || !node->backward) {
            st = PT_FAIL(PT_ERR_VALUE, "backward: trying to backward through the graph a second time (%s); "
                                       "its saved tensors were freed by the first backward", node->name);
            pt_tensor_release(g);
            break;
        }
        pt_tensor *gin[PT_NODE_MAX_INPUTS] = {0};
        st = node->backward(node, g, gin);
        if (st) {
            pt_error_context(st, "backward of %s", node->name);
            for (int i = 0; i < node->n_inputs; i++) pt_tensor_release(gin[i]);
            pt_tensor_release(g);
            break;
        }
        for (int i = 0; i < node->n_inputs && !st; i++) {
            if (!gin[i]) continue;
            if (!pt_node_needs_grad(node, i)) { /* a backward may return gradients nobody asked for */
                pt_tensor_release(gin[i]);
                gin[i] = NULL;
                continue;
            }
            pt_tensor **is;
            st = pt_gmap_slot(&grads, node->inputs[i], &is);
            if (!st) st = pt_accumulate(is, gin[i], node->inputs[i]);
            else pt_tensor_release(gin[i]);
            gin[i] = NULL;
        }
        for (int i = 0; i < node->n_inputs; i++) pt_tensor_release(gin[i]);
        /* done with this tensor's gradient */
        if (t->retain_grad && t != root) {
            pt_tensor_release(t->grad);
            t->grad = g;
        } else {
            pt_tensor_release(g);
        }
        pt_node_release_saved(node);
    }
    pt_tensor_release(g0);
    pt_gmap_free(&grads);
    free(order.items);
    pt_grad_set_enabled(prev);
    return st;
}
