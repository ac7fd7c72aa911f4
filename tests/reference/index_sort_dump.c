/* index_sort_dump.c — writes random cases of the index and sort families (inputs, parameters and
 * proteus' outputs) into a directory, for tests/reference/index_sort_vs_torch.py to recompute with
 * PyTorch and compare. Built and run by the ctest "py_index_sort_vs_torch" (CMakeLists.txt, end):
 *
 *   build/index_sort_dump DIR      # writes DIR/manifest.txt and DIR/<case>_<name>.bin
 *
 * manifest.txt, one line per item:
 *   C <case> <op> <key>=<value> ...        a case (op = sort, topk, kthvalue, quantile, gather,
 *                                          scatter_add, index_select, embedding)
 *   T <case> <name> <dtype> <d0,d1,...|->  a tensor of that case, raw little-endian, C order
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pt_ops.h"

static FILE *pt_manifest;
static const char *pt_dir;
static uint64_t pt_seed = 12345;

static double rnd(void) { /* [0, 1) */
    pt_seed = pt_seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(pt_seed >> 11) / 9007199254740992.0;
}
static int64_t rndi(int64_t n) { return (int64_t)(rnd() * (double)n); }

static int dump(int c, const char *name, pt_tensor *t) {
    pt_tensor *tc = NULL;
    if (pt_tensor_contiguous_raw(&tc, t)) return 1;
    char path[512], shp[256] = "";
    snprintf(path, sizeof path, "%s/%d_%s.bin", pt_dir, c, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t nb = (size_t)pt_tensor_numel(tc) * pt_dtype_size(tc->dtype);
    if (nb) fwrite(pt_tensor_data(tc), 1, nb, f);
    fclose(f);
    for (int d = 0; d < t->ndim; d++) {
        char b[32];
        snprintf(b, sizeof b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        strcat(shp, b);
    }
    fprintf(pt_manifest, "T %d %s %s %s\n", c, name, pt_dtype_name(t->dtype), t->ndim ? shp : "-");
    pt_tensor_release(tc);
    return 0;
}

/* random float tensor with duplicates (values on a grid) and, when nan_p > 0, NaNs */
static pt_tensor *rand_tensor(pt_dtype dt, int ndim, const int64_t *shape, double nan_p, int grid) {
    pt_tensor *t = NULL;
    if (pt_tensor_empty(&t, dt, PT_CPU, ndim, shape)) return NULL;
    for (int64_t i = 0; i < pt_tensor_numel(t); i++) {
        double v = grid ? (double)rndi(grid) - grid / 2 : rnd() * 4 - 2;
        if (rnd() < nan_p) v = NAN;
        pt_tensor_set_flat(t, i, v);
    }
    return t;
}

static pt_tensor *rand_index(int ndim, const int64_t *shape, int64_t limit) {
    pt_tensor *t = NULL;
    if (pt_tensor_empty(&t, PT_I64, PT_CPU, ndim, shape)) return NULL;
    for (int64_t i = 0; i < pt_tensor_numel(t); i++) ((int64_t *)pt_tensor_data(t))[i] = rndi(limit);
    return t;
}

static void rand_shape(int *ndim, int64_t *shape, int64_t maxd) {
    *ndim = 1 + (int)rndi(3);
    for (int d = 0; d < *ndim; d++) shape[d] = 1 + rndi(maxd);
}

#define CHECK(x)                                                                  \
    do {                                                                          \
        if (x) {                                                                  \
            fprintf(stderr, "index_sort_dump: %s failed: %s\n", #x, pt_last_error()); \
            return 1;                                                             \
        }                                                                         \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: index_sort_dump DIR\n");
        return 2;
    }
    pt_dir = argv[1];
    char mp[512];
    snprintf(mp, sizeof mp, "%s/manifest.txt", pt_dir);
    pt_manifest = fopen(mp, "w");
    if (!pt_manifest) {
        fprintf(stderr, "index_sort_dump: cannot write %s\n", mp);
        return 1;
    }
    int c = 0;
    for (int rep = 0; rep < 40; rep++) {
        int nd;
        int64_t sh[PT_MAX_DIMS];
        pt_dtype dt = rep % 2 ? PT_F64 : PT_F32;
        /* sort / topk / kthvalue */
        rand_shape(&nd, sh, 9);
        pt_tensor *x = rand_tensor(dt, nd, sh, rep % 3 == 0 ? 0.1 : 0, rep % 4 == 1 ? 5 : 0);
        int dim = (int)rndi(nd), desc = (int)rndi(2);
        pt_tensor *v = NULL, *i = NULL;
        CHECK(pt_sort(&v, &i, x, dim, desc));
        fprintf(pt_manifest, "C %d sort dim=%d descending=%d\n", c, dim, desc);
        CHECK(dump(c, "x", x) || dump(c, "values", v) || dump(c, "indices", i));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(i);
        int64_t k = rndi(sh[dim] + 1);
        int largest = (int)rndi(2);
        CHECK(pt_topk(&v, &i, x, k, dim, largest));
        fprintf(pt_manifest, "C %d topk k=%lld dim=%d largest=%d\n", c, (long long)k, dim, largest);
        CHECK(dump(c, "x", x) || dump(c, "values", v) || dump(c, "indices", i));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(i);
        k = 1 + rndi(sh[dim]);
        int keep = (int)rndi(2);
        CHECK(pt_kthvalue(&v, &i, x, k, dim, keep));
        fprintf(pt_manifest, "C %d kthvalue k=%lld dim=%d keepdim=%d\n", c, (long long)k, dim, keep);
        CHECK(dump(c, "x", x) || dump(c, "values", v) || dump(c, "indices", i));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(i);
        /* quantile (a dim or all dims), q on a grid and random, including the quantization q */
        double qs[] = {0, 1, 0.5, 0.9999984, rnd()};
        double q = qs[rndi(5)];
        int qdim = rndi(3) == 0 ? PT_ALL_DIMS : (int)rndi(nd);
        CHECK(pt_quantile(&v, x, q, qdim, keep));
        fprintf(pt_manifest, "C %d quantile q=%.17g dim=%d keepdim=%d\n", c, q, qdim == PT_ALL_DIMS ? -1000 : qdim,
                keep);
        CHECK(dump(c, "x", x) || dump(c, "out", v));
        c++;
        pt_tensor_release(v);
        /* gather / scatter_add along dim with an index no larger than x */
        int64_t ish[PT_MAX_DIMS];
        for (int d = 0; d < nd; d++) ish[d] = d == dim ? 1 + rndi(6) : 1 + rndi(sh[d]);
        pt_tensor *idx = rand_index(nd, ish, sh[dim]);
        CHECK(pt_gather(&v, x, dim, idx));
        fprintf(pt_manifest, "C %d gather dim=%d\n", c, dim);
        CHECK(dump(c, "x", x) || dump(c, "index", idx) || dump(c, "out", v));
        c++;
        pt_tensor_release(v);
        pt_tensor *src = rand_tensor(dt, nd, ish, 0, 0);
        CHECK(pt_scatter_add(&v, x, dim, idx, src));
        fprintf(pt_manifest, "C %d scatter_add dim=%d\n", c, dim);
        CHECK(dump(c, "x", x) || dump(c, "index", idx) || dump(c, "src", src) || dump(c, "out", v));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(src);
        pt_tensor_release(idx);
        /* index_select and embedding */
        int64_t ni = rndi(7);
        idx = rand_index(1, &ni, sh[dim]);
        CHECK(pt_index_select(&v, x, dim, idx));
        fprintf(pt_manifest, "C %d index_select dim=%d\n", c, dim);
        CHECK(dump(c, "x", x) || dump(c, "index", idx) || dump(c, "out", v));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(idx);
        int64_t wsh[2] = {1 + rndi(20), 1 + rndi(8)}, esh[2] = {1 + rndi(4), 1 + rndi(5)};
        pt_tensor *w = rand_tensor(dt, 2, wsh, 0, 0);
        idx = rand_index(2, esh, wsh[0]);
        CHECK(pt_embedding(&v, w, idx));
        fprintf(pt_manifest, "C %d embedding\n", c);
        CHECK(dump(c, "weight", w) || dump(c, "index", idx) || dump(c, "out", v));
        c++;
        pt_tensor_release(v);
        pt_tensor_release(idx);
        pt_tensor_release(w);
        pt_tensor_release(x);
    }
    fclose(pt_manifest);
    printf("index_sort_dump: %d cases in %s\n", c, pt_dir);
    return 0;
}
