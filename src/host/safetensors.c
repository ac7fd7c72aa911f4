/* safetensors.c — safetensors reader and writer (format documented field by field in
 * pt_safetensors.h).
 *
 * Reading a file: the 8-byte length and the JSON header are read and fully validated first (against
 * the file size), then each tensor is allocated with pt_tensor_empty and filled with pread, so the
 * file is never held in memory twice and no allocation is larger than what the file really holds.
 *
 * Test: tests/c/test_safetensors.c (ctest c_test_safetensors), tests/reference/safetensors_interop.py.
 */
#include "pt_safetensors.h"

#include <errno.h>    /* errno */
#include <fcntl.h>    /* open */
#include <math.h>     /* floor, isfinite */
#include <stdlib.h>   /* malloc, realloc, free, qsort */
#include <string.h>   /* strcmp, strdup, memcpy, memset, strerror */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* pread, close */

#include <cjson/cJSON.h> /* cJSON_ParseWithLength, cJSON_PrintUnformatted */

#include "pt_fileio.h" /* pt_file_write_atomic */

static const struct {
    const char *name;
    size_t size;
} pt_st_dtypes[PT_NDTYPES] = {
    [PT_F32] = {"F32", 4}, [PT_F64] = {"F64", 8}, [PT_BF16] = {"BF16", 2}, [PT_F16] = {"F16", 2},
    [PT_I64] = {"I64", 8}, [PT_I32] = {"I32", 4}, [PT_U16] = {"U16", 2},  [PT_I8] = {"I8", 1},
    [PT_U8] = {"U8", 1},   [PT_BOOL] = {"BOOL", 1},
};

const char *pt_safetensors_dtype_name(pt_dtype dt) {
    return (dt >= 0 && dt < PT_NDTYPES) ? pt_st_dtypes[dt].name : "?";
}

pt_status pt_safetensors_dtype_parse(const char *name, pt_dtype *out) {
    for (int i = 0; i < PT_NDTYPES; i++)
        if (strcmp(name, pt_st_dtypes[i].name) == 0) {
            *out = (pt_dtype)i;
            return PT_OK;
        }
    return PT_FAIL(PT_ERR_DTYPE, "unknown dtype '%s' (proteus reads F32 F64 BF16 F16 I64 I32 U16 I8 U8 BOOL)",
                   name);
}

/* ---- the list ---- */

pt_status pt_st_list_add(pt_st_list *l, const char *name, pt_tensor *t) {
    if (!name || !t)
        return PT_FAIL(PT_ERR_VALUE, "safetensors: entry without a name or tensor");
    if (strcmp(name, "__metadata__") == 0)
        return PT_FAIL(PT_ERR_VALUE, "safetensors: '__metadata__' is reserved and cannot name a tensor");
    if (pt_st_list_get(l, name))
        return PT_FAIL(PT_ERR_VALUE, "safetensors: duplicate tensor name '%s'", name);
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        pt_st_tensor *ni = realloc(l->items, (size_t)nc * sizeof *ni);
        if (!ni)
            return PT_FAIL(PT_ERR_OOM, "safetensors: cannot grow the tensor list");
        l->items = ni;
        l->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm)
        return PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
    pt_tensor_retain(t);
    l->items[l->n].name = nm;
    l->items[l->n].tensor = t;
    l->n++;
    return PT_OK;
}

pt_status pt_st_list_add_meta(pt_st_list *l, const char *key, const char *value) {
    if (!key || !value)
        return PT_FAIL(PT_ERR_VALUE, "safetensors: metadata entry without a key or value");
    if (pt_st_list_get_meta(l, key))
        return PT_FAIL(PT_ERR_VALUE, "safetensors: duplicate metadata key '%s'", key);
    if (l->nmeta == l->capmeta) {
        int nc = l->capmeta ? l->capmeta * 2 : 8;
        pt_st_meta *nm = realloc(l->meta, (size_t)nc * sizeof *nm);
        if (!nm)
            return PT_FAIL(PT_ERR_OOM, "safetensors: cannot grow the metadata list");
        l->meta = nm;
        l->capmeta = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
    }
    l->meta[l->nmeta].key = k;
    l->meta[l->nmeta].value = v;
    l->nmeta++;
    return PT_OK;
}

pt_tensor *pt_st_list_get(const pt_st_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return l->items[i].tensor;
    return NULL;
}

const char *pt_st_list_get_meta(const pt_st_list *l, const char *key) {
    for (int i = 0; i < l->nmeta; i++)
        if (strcmp(l->meta[i].key, key) == 0)
            return l->meta[i].value;
    return NULL;
}

void pt_st_list_free(pt_st_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].name);
        pt_tensor_release(l->items[i].tensor);
    }
    for (int i = 0; i < l->nmeta; i++) {
        free(l->meta[i].key);
        free(l->meta[i].value);
    }
    free(l->items);
    free(l->meta);
    memset(l, 0, sizeof *l);
}

/* ---- header parsing ---- */

typedef struct {
    const char *name; /* points into the cJSON tree */
    pt_dtype dtype;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    uint64_t begin, end;
} pt_st_desc;

/* A JSON number that is a non-negative integer below 2^53. */
static int pt_st_json_u64(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > 9007199254740992.0)
        return 0;
    *v = (uint64_t)d;
    return 1;
}

static int pt_st_desc_cmp_begin(const void *a, const void *b) {
    const pt_st_desc *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}
static int pt_st_desc_cmp_name(const void *a, const void *b) {
    return strcmp(((const pt_st_desc *)a)->name, ((const pt_st_desc *)b)->name);
}

/* Parses and validates the JSON header against a data buffer of data_len bytes. On success *root
 * holds the cJSON tree (names point into it), *descs the tensors sorted by name. */
static pt_status pt_st_parse_header(const char *json, size_t jlen, uint64_t data_len, const char *what,
                                    cJSON **root_out, pt_st_desc **descs_out, int *n_out, pt_st_list *meta_out) {
    *root_out = NULL;
    *descs_out = NULL;
    *n_out = 0;
    cJSON *root = cJSON_ParseWithLength(json, jlen);
    if (!root)
        return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: header is not valid JSON (near byte %ld of %zu)", what,
                       cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L, jlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: header is JSON but not an object", what);
    }
    int count = cJSON_GetArraySize(root);
    pt_st_desc *d = calloc((size_t)(count > 0 ? count : 1), sizeof *d);
    if (!d) {
        cJSON_Delete(root);
        return PT_FAIL(PT_ERR_OOM, "safetensors %s: out of memory", what);
    }
    pt_status s = PT_OK;
    int n = 0;
    for (cJSON *e = root->child; e && s == PT_OK; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: __metadata__ is not an object", what);
                break;
            }
            for (cJSON *m = e->child; m && s == PT_OK; m = m->next) {
                if (!cJSON_IsString(m))
                    s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: metadata '%s' is not a string", what,
                                m->string ? m->string : "");
                else if (meta_out)
                    s = pt_st_list_add_meta(meta_out, m->string ? m->string : "", m->valuestring);
                if (s != PT_OK && meta_out)
                    s = pt_error_context(s, "safetensors %s", what);
            }
            continue;
        }
        pt_st_desc *t = &d[n];
        t->name = name;
        if (!cJSON_IsObject(e)) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' is not a JSON object", what, name);
            break;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of)) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' needs a string dtype and arrays shape and data_offsets",
                        what, name);
            break;
        }
        if (pt_safetensors_dtype_parse(dt->valuestring, &t->dtype) != PT_OK) {
            s = PT_FAIL(PT_ERR_DTYPE, "safetensors %s: tensor '%s' has unknown dtype '%s' (proteus reads F32 F64 BF16 F16 I64 I32 U16 I8 U8 BOOL)",
                        what, name, dt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > PT_MAX_DIMS) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' has %d dims (at most %d)", what, name, nd, PT_MAX_DIMS);
            break;
        }
        t->ndim = nd;
        uint64_t numel = 1;
        int i = 0;
        int overflow = 0;
        for (const cJSON *x = sh->child; x; x = x->next, i++) {
            uint64_t v;
            if (!pt_st_json_u64(x, &v)) {
                s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' shape entry %d is not a non-negative integer",
                            what, name, i);
                break;
            }
            t->shape[i] = (int64_t)v;
            if (v != 0 && numel > UINT64_MAX / v)
                overflow = 1;
            numel *= v;
        }
        if (s != PT_OK)
            break;
        uint64_t begin, end;
        if (cJSON_GetArraySize(of) != 2 || !pt_st_json_u64(of->child, &begin) || !pt_st_json_u64(of->child->next, &end)) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' data_offsets must be two non-negative integers",
                        what, name);
            break;
        }
        if (begin > end || end > data_len) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' data_offsets [%llu, %llu] are outside the data buffer of %llu bytes",
                        what, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_len);
            break;
        }
        size_t esz = pt_st_dtypes[t->dtype].size;
        if (overflow || numel > UINT64_MAX / esz || numel * esz != end - begin) {
            s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor '%s' has %llu bytes of data but its shape and dtype %s need %s%llu",
                        what, name, (unsigned long long)(end - begin), dt->valuestring,
                        overflow || numel > UINT64_MAX / esz ? "more than " : "",
                        overflow || numel > UINT64_MAX / esz ? (unsigned long long)UINT64_MAX : (unsigned long long)(numel * esz));
            break;
        }
        t->begin = begin;
        t->end = end;
        n++;
    }
    if (s == PT_OK) {
        /* names unique, byte ranges disjoint */
        qsort(d, (size_t)n, sizeof *d, pt_st_desc_cmp_name);
        for (int i = 1; i < n && s == PT_OK; i++)
            if (strcmp(d[i - 1].name, d[i].name) == 0)
                s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensor name '%s' appears twice", what, d[i].name);
        if (s == PT_OK) {
            pt_st_desc *byoff = malloc((size_t)(n > 0 ? n : 1) * sizeof *byoff);
            if (!byoff) {
                s = PT_FAIL(PT_ERR_OOM, "safetensors %s: out of memory", what);
            } else {
                memcpy(byoff, d, (size_t)n * sizeof *d);
                qsort(byoff, (size_t)n, sizeof *byoff, pt_st_desc_cmp_begin);
                /* walk by start offset, remembering the non-empty range that reaches furthest */
                int far = -1;
                for (int i = 0; i < n && s == PT_OK; i++) {
                    if (byoff[i].end == byoff[i].begin)
                        continue;
                    if (far >= 0 && byoff[i].begin < byoff[far].end)
                        s = PT_FAIL(PT_ERR_FORMAT, "safetensors %s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                                    what, byoff[far].name, (unsigned long long)byoff[far].begin,
                                    (unsigned long long)byoff[far].end, byoff[i].name,
                                    (unsigned long long)byoff[i].begin, (unsigned long long)byoff[i].end);
                    if (far < 0 || byoff[i].end > byoff[far].end)
                        far = i;
                }
                free(byoff);
            }
        }
    }
    if (s != PT_OK) {
        free(d);
        cJSON_Delete(root);
        return s;
    }
    *root_out = root;
    *descs_out = d;
    *n_out = n;
    return PT_OK;
}

static pt_status pt_st_check_bool(const pt_tensor *t, const char *what, const char *name) {
    const uint8_t *p = pt_tensor_data(t);
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: BOOL tensor '%s' holds %u at element %lld (must be 0 or 1)",
                           what, name, p[i], (long long)i);
    return PT_OK;
}

static uint64_t pt_st_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static pt_status pt_st_check_len(uint64_t hlen, uint64_t total, const char *what) {
    if (total < 8)
        return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: file is %llu bytes, too short for the 8-byte header length",
                       what, (unsigned long long)total);
    if (hlen > total - 8)
        return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: header length %llu exceeds the file (%llu bytes after the length field)",
                       what, (unsigned long long)hlen, (unsigned long long)(total - 8));
    if (hlen > PT_ST_MAX_HEADER)
        return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: header length %llu is more than the 100 MB limit", what,
                       (unsigned long long)hlen);
    return PT_OK;
}

/* Shared by load and parse: creates the tensors; fill(ctx, dst, offset, n) copies bytes of the data
 * buffer. */
typedef pt_status (*pt_st_fill_fn)(void *ctx, void *dst, uint64_t off, size_t n, const char *what);

static pt_status pt_st_build(const char *json, size_t jlen, uint64_t data_len, const char *what, pt_st_fill_fn fill,
                             void *ctx, pt_st_list *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    pt_st_desc *d;
    int n;
    pt_status s = pt_st_parse_header(json, jlen, data_len, what, &root, &d, &n, out);
    if (s != PT_OK) {
        pt_st_list_free(out); /* metadata read before the failure */
        return s;
    }
    for (int i = 0; i < n && s == PT_OK; i++) {
        pt_tensor *t = NULL;
        s = pt_tensor_empty(&t, d[i].dtype, PT_CPU, d[i].ndim, d[i].shape);
        if (s != PT_OK) {
            pt_error_context(s, "safetensors %s: tensor '%s'", what, d[i].name);
            break;
        }
        size_t nb = (size_t)(d[i].end - d[i].begin);
        if (nb)
            s = fill(ctx, pt_tensor_data(t), d[i].begin, nb, what);
        if (s == PT_OK && d[i].dtype == PT_BOOL)
            s = pt_st_check_bool(t, what, d[i].name);
        if (s == PT_OK)
            s = pt_st_list_add(out, d[i].name, t);
        pt_tensor_release(t);
    }
    free(d);
    cJSON_Delete(root);
    if (s != PT_OK)
        pt_st_list_free(out);
    return s;
}

typedef struct {
    const uint8_t *data;
} pt_st_mem;

static pt_status pt_st_fill_mem(void *ctx, void *dst, uint64_t off, size_t n, const char *what) {
    (void)what;
    memcpy(dst, ((pt_st_mem *)ctx)->data + off, n);
    return PT_OK;
}

pt_status pt_safetensors_parse(const uint8_t *buf, size_t len, const char *what, pt_st_list *out) {
    memset(out, 0, sizeof *out);
    if (!what)
        what = "<buffer>";
    uint64_t hlen = len >= 8 ? pt_st_u64le(buf) : 0;
    PT_TRY(pt_st_check_len(hlen, len, what));
    pt_st_mem m = {buf + 8 + hlen};
    return pt_st_build((const char *)buf + 8, (size_t)hlen, len - 8 - hlen, what, pt_st_fill_mem, &m, out);
}

typedef struct {
    int fd;
    uint64_t base;
} pt_st_fd;

static pt_status pt_st_pread_all(int fd, void *dst, uint64_t off, size_t n, const char *what) {
    uint8_t *p = dst;
    while (n > 0) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return PT_FAIL(PT_ERR_IO, "cannot read %s: %s", what, strerror(errno));
        if (k == 0)
            return PT_FAIL(PT_ERR_FORMAT, "safetensors %s: file ended early (changed while reading?)", what);
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return PT_OK;
}

static pt_status pt_st_fill_fd(void *ctx, void *dst, uint64_t off, size_t n, const char *what) {
    pt_st_fd *f = ctx;
    return pt_st_pread_all(f->fd, dst, f->base + off, n, what);
}

pt_status pt_safetensors_load(const char *path, pt_st_list *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PT_FAIL(PT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return PT_FAIL(PT_ERR_IO, "cannot read %s: not a regular file", path);
    }
    uint64_t total = (uint64_t)st.st_size;
    uint8_t lenbuf[8];
    pt_status s = PT_OK;
    if (total >= 8)
        s = pt_st_pread_all(fd, lenbuf, 0, 8, path);
    uint64_t hlen = total >= 8 ? pt_st_u64le(lenbuf) : 0;
    if (s == PT_OK)
        s = pt_st_check_len(hlen, total, path);
    char *json = NULL;
    if (s == PT_OK) {
        json = malloc((size_t)hlen + 1);
        if (!json)
            s = PT_FAIL(PT_ERR_OOM, "safetensors %s: cannot allocate %llu header bytes", path, (unsigned long long)hlen);
        else
            s = pt_st_pread_all(fd, json, 8, (size_t)hlen, path);
    }
    if (s == PT_OK) {
        json[hlen] = 0;
        pt_st_fd f = {fd, 8 + hlen};
        s = pt_st_build(json, (size_t)hlen, total - 8 - hlen, path, pt_st_fill_fd, &f, out);
    }
    free(json);
    close(fd);
    return s;
}

/* ---- writing ---- */

static int pt_st_cmp_item(const void *a, const void *b) {
    return strcmp((*(const pt_st_tensor *const *)a)->name, (*(const pt_st_tensor *const *)b)->name);
}

/* Prepares header + host-contiguous tensors; chunks[0] is the header, chunks[1..n] the data.
 * *hold gets the references to release. */
static pt_status pt_st_prepare(const pt_st_list *l, pt_chunk **chunks_out, pt_tensor ***hold_out, uint8_t **hdr_out) {
    int n = l->n;
    const pt_st_tensor **order = malloc((size_t)(n + 1) * sizeof *order);
    pt_tensor **hold = calloc((size_t)(n + 1), sizeof *hold);
    pt_chunk *chunks = calloc((size_t)(n + 1), sizeof *chunks);
    cJSON *root = cJSON_CreateObject();
    pt_status s = PT_OK;
    char *text = NULL;
    uint8_t *hdr = NULL;
    if (!order || !hold || !chunks || !root) {
        s = PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        order[i] = &l->items[i];
    qsort(order, (size_t)n, sizeof *order, pt_st_cmp_item);
    if (l->nmeta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < l->nmeta; i++)
            if (!cJSON_AddStringToObject(m, l->meta[i].key, l->meta[i].value))
                m = NULL;
        if (!m) {
            s = PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
            goto done;
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        pt_tensor *t = order[i]->tensor, *c = NULL;
        if ((s = pt_tensor_to(&c, t, t->dtype, PT_CPU, 0)) != PT_OK)
            goto done;
        s = pt_tensor_contiguous_raw(&hold[i], c);
        pt_tensor_release(c);
        if (s != PT_OK)
            goto done;
        size_t nb = (size_t)pt_tensor_numel(hold[i]) * pt_st_dtypes[hold[i]->dtype].size;
        chunks[i + 1].data = nb ? pt_tensor_data(hold[i]) : NULL;
        chunks[i + 1].len = nb;
        cJSON *e = cJSON_AddObjectToObject(root, order[i]->name);
        cJSON *dt = e ? cJSON_AddStringToObject(e, "dtype", pt_st_dtypes[t->dtype].name) : NULL;
        cJSON *sh = dt ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *of = sh ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!of) {
            s = PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
            goto done;
        }
        for (int k = 0; k < hold[i]->ndim; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)hold[i]->shape[k]));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        s = PT_FAIL(PT_ERR_OOM, "safetensors: cannot print the header");
        goto done;
    }
    size_t jl = strlen(text), padded = (jl + 7) & ~(size_t)7;
    hdr = malloc(8 + padded);
    if (!hdr) {
        s = PT_FAIL(PT_ERR_OOM, "safetensors: out of memory");
        goto done;
    }
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(hdr + 8, text, jl);
    memset(hdr + 8 + jl, ' ', padded - jl);
    chunks[0].data = hdr;
    chunks[0].len = 8 + padded;
done:
    free(order);
    free(text);
    cJSON_Delete(root);
    if (s != PT_OK) {
        for (int i = 0; hold && i < n; i++)
            if (hold[i])
                pt_tensor_release(hold[i]);
        free(hold);
        free(chunks);
        free(hdr);
        return s;
    }
    *chunks_out = chunks;
    *hold_out = hold;
    *hdr_out = hdr;
    return PT_OK;
}

static void pt_st_unprepare(int n, pt_chunk *chunks, pt_tensor **hold, uint8_t *hdr) {
    for (int i = 0; i < n; i++)
        pt_tensor_release(hold[i]);
    free(hold);
    free(chunks);
    free(hdr);
}

pt_status pt_safetensors_save(const char *path, const pt_st_list *l) {
    pt_chunk *chunks;
    pt_tensor **hold;
    uint8_t *hdr;
    pt_status s = pt_st_prepare(l, &chunks, &hold, &hdr);
    if (s != PT_OK)
        return pt_error_context(s, "saving %s", path);
    s = pt_file_write_atomic(path, chunks, l->n + 1);
    pt_st_unprepare(l->n, chunks, hold, hdr);
    return s;
}

pt_status pt_safetensors_serialize(const pt_st_list *l, uint8_t **out, size_t *out_len) {
    pt_chunk *chunks;
    pt_tensor **hold;
    uint8_t *hdr;
    PT_TRY(pt_st_prepare(l, &chunks, &hold, &hdr));
    size_t total = 0;
    for (int i = 0; i <= l->n; i++)
        total += chunks[i].len;
    uint8_t *buf = malloc(total + 1);
    if (!buf) {
        pt_st_unprepare(l->n, chunks, hold, hdr);
        return PT_FAIL(PT_ERR_OOM, "safetensors: cannot allocate %zu bytes", total + 1);
    }
    size_t pos = 0;
    for (int i = 0; i <= l->n; i++) {
        if (chunks[i].len)
            memcpy(buf + pos, chunks[i].data, chunks[i].len);
        pos += chunks[i].len;
    }
    pt_st_unprepare(l->n, chunks, hold, hdr);
    *out = buf;
    *out_len = total;
    return PT_OK;
}
