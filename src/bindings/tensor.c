/* tensor.c (bindings) — the tensor userdata and module "proteus._tensor".
 *
 * Lua conventions (Torch7 lineage): dims and positions are 1-based (dim 1 is the first, -1 the
 * last; t[1] is the first row; narrow(dim, start, len) starts at 1). Values stored in tensors are data
 * and keep their meaning (token ids and index tensors are 0-based ids).
 * Userdata follows liolib: one idempotent release shared by __gc and __close, so
 * `local t <close> = pt.zeros(...)` frees memory at scope end. Errors from C come back as pt_status and
 * are raised here with the message (pt_lua_raise).
 * Public face: lua/lib/proteus/init.lua. Tests: tests/lua/test_tensor.lua.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/pt_ops.h"
#include "pt_lua.h"

/* ---------------- userdata ---------------- */
void pt_lua_push_tensor(lua_State *L, pt_tensor *t) {
    pt_lua_ensure_tensor_metatable(L);
    pt_lua_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = NULL; /* consistent empty state before the metatable is set */
    luaL_setmetatable(L, PT_TENSOR_MT);
    u->t = t;
}

pt_tensor *pt_lua_test_tensor(lua_State *L, int i) {
    pt_lua_tensor *u = luaL_testudata(L, i, PT_TENSOR_MT);
    return u ? u->t : NULL;
}

pt_tensor *pt_lua_check_tensor(lua_State *L, int i) {
    pt_lua_tensor *u = luaL_checkudata(L, i, PT_TENSOR_MT);
    if (!u->t) luaL_error(L, "attempt to use a released tensor (it was closed or collected)");
    return u->t;
}

static int t_release(lua_State *L) {
    pt_lua_tensor *u = luaL_checkudata(L, 1, PT_TENSOR_MT);
    if (u->t) {
        pt_tensor_release(u->t);
        u->t = NULL;
    }
    return 0;
}

static pt_tensor *pt_lua_check_tensor_or_number(lua_State *L, int i, double *num, int *is_num) {
    if (lua_type(L, i) == LUA_TNUMBER) {
        *num = lua_tonumber(L, i);
        *is_num = 1;
        return NULL;
    }
    *is_num = 0;
    return pt_lua_check_tensor(L, i);
}

/* one shape entry: an integer, or a float with an integral value (1e6, 2^20), so that sizes computed
 * in Lua arithmetic work; 2.5, NaN or 1e300 are refused with the entry's position and value */
static int64_t pt_lua_shape_entry(lua_State *L, int idx, int k) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok) {
        if (lua_type(L, idx) == LUA_TNUMBER)
            luaL_error(L, "shape entry %d is %s: sizes must be whole numbers within the 64-bit range", k,
                       lua_tostring(L, idx));
        luaL_error(L, "shape entry %d is a %s (want a whole number)", k, luaL_typename(L, idx));
    }
    return (int64_t)v;
}

int pt_lua_check_shape(lua_State *L, int i, int64_t *shape) {
    int n = 0;
    if (lua_istable(L, i)) {
        n = (int)luaL_len(L, i);
        if (n > PT_MAX_DIMS) luaL_error(L, "shape with %d dims (at most %d)", n, PT_MAX_DIMS);
        for (int k = 0; k < n; k++) {
            lua_geti(L, i, k + 1);
            shape[k] = pt_lua_shape_entry(L, -1, k + 1);
            lua_pop(L, 1);
        }
        return n;
    }
    /* integers first: a float after the first size ends the shape (pt.full(2, 3, 1.5) fills with 1.5);
     * a float in first place can only be a size (pt.zeros(1e6)) */
    int top = lua_gettop(L);
    for (int k = i; k <= top && (lua_isinteger(L, k) || (k == i && lua_type(L, k) == LUA_TNUMBER)); k++) {
        if (n >= PT_MAX_DIMS) luaL_error(L, "shape with more than %d dims", PT_MAX_DIMS);
        shape[n] = pt_lua_shape_entry(L, k, n + 1);
        n++;
    }
    return n;
}

pt_dtype pt_lua_opt_dtype(lua_State *L, int i, pt_dtype def) {
    if (lua_isnoneornil(L, i)) return def;
    pt_dtype dt;
    if (pt_dtype_parse(luaL_checkstring(L, i), &dt)) pt_lua_raise(L, PT_ERR_DTYPE);
    return dt;
}

pt_device pt_lua_opt_device(lua_State *L, int i, pt_device def) {
    if (lua_isnoneornil(L, i)) return def;
    pt_device d;
    if (pt_device_parse(luaL_checkstring(L, i), &d)) pt_lua_raise(L, PT_ERR_VALUE);
    return d;
}

/* 1-based Lua dim -> 0-based C dim (negative stays negative: C normalizes) */
static int pt_lua_dim(lua_State *L, int i) {
    lua_Integer d = luaL_checkinteger(L, i);
    if (d == 0) luaL_error(L, "dim 0 is not valid: dims are 1-based (1 is the first, -1 the last)");
    return d > 0 ? (int)(d - 1) : (int)d;
}

/* ---------------- constructors ---------------- */
/* options: a dtype string, or a table {dtype=, device=, requires_grad=} at index i */
void pt_lua_opts(lua_State *L, int i, pt_dtype *dt, pt_device *dev, int *rg) {
    if (lua_type(L, i) == LUA_TSTRING) {
        *dt = pt_lua_opt_dtype(L, i, *dt);
    } else if (lua_istable(L, i)) {
        lua_getfield(L, i, "dtype");
        if (!lua_isnil(L, -1)) *dt = pt_lua_opt_dtype(L, lua_gettop(L), *dt);
        lua_pop(L, 1);
        lua_getfield(L, i, "device");
        if (!lua_isnil(L, -1)) *dev = pt_lua_opt_device(L, lua_gettop(L), *dev);
        lua_pop(L, 1);
        lua_getfield(L, i, "requires_grad");
        if (rg) *rg = lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, i)) {
        luaL_argerror(L, i, "expected a dtype string or an options table {dtype=, device=}");
    }
}

/* pt.full(shape, value, opts) / zeros(shape, opts) — shape as a table, or integers first */
static int pt_lua_make(lua_State *L, int kind) {
    int64_t shape[PT_MAX_DIMS];
    int n, next;
    if (lua_istable(L, 1)) {
        n = pt_lua_check_shape(L, 1, shape);
        next = 2;
    } else {
        n = pt_lua_check_shape(L, 1, shape);
        next = n + 1;
    }
    double value = 0;
    if (kind == 2) value = luaL_checknumber(L, next++);
    pt_dtype dt = PT_F32;
    pt_device dev = PT_CPU;
    int rg = 0;
    pt_lua_opts(L, next, &dt, &dev, &rg);
    pt_tensor *t = NULL;
    if (kind == 0) PT_LUA_CHECK(L, pt_tensor_zeros(&t, dt, dev, n, shape));
    else if (kind == 1) PT_LUA_CHECK(L, pt_tensor_full(&t, dt, dev, n, shape, 1.0));
    else if (kind == 2) PT_LUA_CHECK(L, pt_tensor_full(&t, dt, dev, n, shape, value));
    else PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, dev, n, shape));
    t->requires_grad = rg;
    pt_lua_push_tensor(L, t);
    return 1;
}
static int l_zeros(lua_State *L) { return pt_lua_make(L, 0); }
static int l_ones(lua_State *L) { return pt_lua_make(L, 1); }
static int l_full(lua_State *L) { return pt_lua_make(L, 2); }
static int l_empty(lua_State *L) { return pt_lua_make(L, 3); }

/* pt.arange(stop) / arange(start, stop[, step][, opts]) */
static int l_arange(lua_State *L) {
    double start = 0, stop, step = 1;
    int nnum = 0;
    while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER) nnum++;
    if (nnum == 0) return luaL_error(L, "arange: expected numbers (stop) or (start, stop[, step])");
    int all_int = 1;
    for (int k = 1; k <= nnum; k++) all_int &= lua_isinteger(L, k);
    if (nnum == 1) stop = lua_tonumber(L, 1);
    else {
        start = lua_tonumber(L, 1);
        stop = lua_tonumber(L, 2);
        if (nnum == 3) step = lua_tonumber(L, 3);
    }
    if (step == 0) return luaL_error(L, "arange: step must not be 0");
    pt_dtype dt = all_int ? PT_I64 : PT_F32;
    pt_device dev = PT_CPU;
    pt_lua_opts(L, nnum + 1, &dt, &dev, NULL);
    int64_t n = (int64_t)ceil((stop - start) / step);
    if (n < 0) n = 0;
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, PT_CPU, 1, &n));
    for (int64_t i = 0; i < n; i++) pt_tensor_set_flat(t, i, start + (double)i * step);
    if (dev.type != PT_DEV_CPU) {
        pt_tensor *d = NULL;
        pt_status st = pt_tensor_to(&d, t, dt, dev, 0);
        pt_tensor_release(t);
        PT_LUA_CHECK(L, st);
        t = d;
    }
    pt_lua_push_tensor(L, t);
    return 1;
}

/* pt.tensor(nested table or number[, opts]) */
static void pt_lua_table_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape) {
    if (lua_type(L, idx) != LUA_TTABLE) {
        *ndim = depth;
        return;
    }
    if (depth >= PT_MAX_DIMS) luaL_error(L, "tensor: nesting deeper than %d", PT_MAX_DIMS);
    lua_Integer n = luaL_len(L, idx);
    shape[depth] = n;
    if (n == 0) {
        *ndim = depth + 1;
        return;
    }
    lua_geti(L, idx, 1);
    pt_lua_table_shape(L, lua_gettop(L), depth + 1, ndim, shape);
    lua_pop(L, 1);
}

static void pt_lua_table_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, pt_tensor *t,
                              int64_t *pos, int *all_int) {
    if (depth == ndim) {
        int isnum;
        lua_Number v = lua_tonumberx(L, idx, &isnum);
        if (!isnum) {
            if (lua_isboolean(L, idx)) v = lua_toboolean(L, idx);
            else luaL_error(L, "tensor: element %d is a %s, expected a number", (int)(*pos + 1), luaL_typename(L, idx));
        } else if (!lua_isinteger(L, idx)) {
            *all_int = 0;
        }
        pt_tensor_set_flat(t, (*pos)++, v);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE || luaL_len(L, idx) != shape[depth])
        luaL_error(L, "tensor: ragged nested table (expected %d entries at depth %d)", (int)shape[depth], depth + 1);
    for (int64_t k = 1; k <= shape[depth]; k++) {
        lua_geti(L, idx, k);
        pt_lua_table_fill(L, lua_gettop(L), depth + 1, ndim, shape, t, pos, all_int);
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L) {
    int ndim = 0;
    int64_t shape[PT_MAX_DIMS];
    luaL_checkany(L, 1);
    pt_dtype dt = PT_F32;
    pt_device dev = PT_CPU;
    int rg = 0;
    pt_lua_opts(L, 2, &dt, &dev, &rg);
    lua_settop(L, 1);
    pt_lua_table_shape(L, 1, 0, &ndim, shape);
    /* fill in f64 first, then convert: the default dtype is f32 (Torch7 style), ask for i64 explicitly */
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, PT_F64, PT_CPU, ndim, shape));
    int64_t pos = 0;
    int all_int = 1;
    pt_lua_push_tensor(L, t); /* owns t while filling (errors unwind safely) */
    pt_lua_table_fill(L, 1, 0, ndim, shape, t, &pos, &all_int);
    pt_tensor *r = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&r, t, dt, dev, 1));
    r->requires_grad = rg;
    pt_lua_push_tensor(L, r);
    return 1;
}

/* ---------------- metadata ---------------- */
static int m_shape(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_size(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return m_shape(L);
    int d = pt_lua_dim(L, 2);
    PT_LUA_CHECK(L, pt_norm_dim("size", t->ndim, &d));
    lua_pushinteger(L, t->ndim ? t->shape[d] : 1);
    return 1;
}

static int m_dim(lua_State *L) {
    lua_pushinteger(L, pt_lua_check_tensor(L, 1)->ndim);
    return 1;
}
static int m_numel(lua_State *L) {
    lua_pushinteger(L, pt_tensor_numel(pt_lua_check_tensor(L, 1)));
    return 1;
}
static int m_dtype(lua_State *L) {
    lua_pushstring(L, pt_dtype_name(pt_lua_check_tensor(L, 1)->dtype));
    return 1;
}
static int m_device(lua_State *L) {
    char b[32];
    lua_pushstring(L, pt_device_str(pt_lua_check_tensor(L, 1)->device, b, sizeof b));
    return 1;
}
static int m_is_contiguous(lua_State *L) {
    lua_pushboolean(L, pt_tensor_is_contiguous(pt_lua_check_tensor(L, 1)));
    return 1;
}
static int m_stride(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->stride[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* t:to("f64") / t:to("cuda") / t:to("cuda", "bf16") / t:to{dtype=, device=} — differentiable for float casts */
static int m_to(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_dtype dt = t->dtype;
    pt_device dev = t->device;
    if (lua_istable(L, 2)) {
        pt_lua_opts(L, 2, &dt, &dev, NULL);
    } else {
        for (int i = 2; i <= 3 && !lua_isnoneornil(L, i); i++) {
            const char *s = luaL_checkstring(L, i);
            pt_dtype d2;
            pt_device v2;
            if (pt_dtype_parse(s, &d2) == PT_OK) dt = d2;
            else if (pt_device_parse(s, &v2) == PT_OK) dev = v2;
            else return luaL_error(L, "to: '%s' is neither a dtype (f32, bf16, ...) nor a device (cpu, cuda)", s);
        }
    }
    pt_tensor *r = NULL;
    if (pt_device_eq(dev, t->device)) {
        if (dt == t->dtype) {
            pt_tensor_retain(t);
            r = t;
        } else {
            PT_LUA_CHECK(L, pt_cast(&r, t, dt));
        }
    } else {
        /* device transfers are not recorded on the tape: move parameters before building the graph */
        PT_LUA_CHECK(L, pt_tensor_to(&r, t, dt, dev, 0));
    }
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_item(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    if (pt_tensor_numel(t) != 1) {
        char b[128];
        return luaL_error(L, "item: tensor of shape %s has %d elements, expected 1",
                          pt_shape_str(t->ndim, t->shape, b, sizeof b), (int)pt_tensor_numel(t));
    }
    pt_tensor *h = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&h, t, t->dtype, PT_CPU, 0));
    double v;
    pt_status st = pt_tensor_get_flat(h, 0, &v);
    pt_tensor_release(h);
    PT_LUA_CHECK(L, st);
    if (pt_dtype_is_int(t->dtype) && t->dtype != PT_BOOL) lua_pushinteger(L, (lua_Integer)v);
    else if (t->dtype == PT_BOOL) lua_pushboolean(L, v != 0);
    else lua_pushnumber(L, v);
    return 1;
}

static void pt_lua_push_elem(lua_State *L, pt_dtype dt, double v) {
    if (dt == PT_BOOL) lua_pushboolean(L, v != 0);
    else if (pt_dtype_is_int(dt)) lua_pushinteger(L, (lua_Integer)v);
    else lua_pushnumber(L, v);
}

static void pt_lua_totable_rec(lua_State *L, pt_tensor *t, int d, int64_t *idx) {
    if (d == t->ndim) {
        if (t->dtype == PT_I64) { /* exact: int64 values beyond 2^53 do not survive a double */
            int64_t off = t->offset;
            for (int k = 0; k < t->ndim; k++) off += idx[k] * t->stride[k];
            lua_pushinteger(L, ((const int64_t *)t->storage->data)[off]);
            return;
        }
        double v = 0;
        pt_tensor_get(t, idx, &v);
        pt_lua_push_elem(L, t->dtype, v);
        return;
    }
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        idx[d] = i;
        pt_lua_totable_rec(L, t, d + 1, idx);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_tensor *h = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&h, t, t->dtype, PT_CPU, 0));
    pt_lua_push_tensor(L, h);
    int64_t idx[PT_MAX_DIMS] = {0};
    pt_lua_totable_rec(L, h, 0, idx);
    return 1;
}

/* Torch7-like printing: values, then "[torch.FloatTensor of size 2x3]" style footer */
static void pt_fmt_val(luaL_Buffer *b, pt_dtype dt, double v) {
    char s[64];
    if (dt == PT_BOOL) snprintf(s, sizeof s, "%s", v != 0 ? "true" : "false");
    else if (pt_dtype_is_int(dt)) snprintf(s, sizeof s, "%lld", (long long)v);
    else snprintf(s, sizeof s, "% .4f", v);
    luaL_addstring(b, s);
}

static int m_tostring(lua_State *L) {
    pt_lua_tensor *u = luaL_checkudata(L, 1, PT_TENSOR_MT);
    if (!u->t) {
        lua_pushliteral(L, "proteus.Tensor (released)");
        return 1;
    }
    pt_tensor *t = u->t, *h = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&h, t, t->dtype, PT_CPU, 0));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int64_t n = pt_tensor_numel(h);
    const int64_t maxshow = 6;
    if (h->ndim == 0) {
        double v;
        pt_tensor_get_flat(h, 0, &v);
        pt_fmt_val(&b, h->dtype, v);
        luaL_addchar(&b, '\n');
    } else if (n > 0) {
        int64_t cols = h->shape[h->ndim - 1];
        int64_t rows = n / cols;
        for (int64_t r = 0; r < rows; r++) {
            if (rows > 2 * maxshow && r == maxshow) {
                luaL_addstring(&b, " ...\n");
                r = rows - maxshow;
            }
            for (int64_t c = 0; c < cols; c++) {
                if (cols > 2 * maxshow && c == maxshow) {
                    luaL_addstring(&b, "  ...");
                    c = cols - maxshow;
                }
                double v;
                pt_tensor_get_flat(h, r * cols + c, &v);
                luaL_addchar(&b, ' ');
                pt_fmt_val(&b, h->dtype, v);
            }
            luaL_addchar(&b, '\n');
        }
    }
    char dev[32], sh[160];
    pt_device_str(t->device, dev, sizeof dev);
    pt_shape_str(t->ndim, t->shape, sh, sizeof sh);
    lua_pushfstring(L, "[proteus.Tensor %s %s of shape %s%s]", pt_dtype_name(t->dtype), dev, sh,
                    t->requires_grad ? ", requires_grad" : "");
    luaL_addvalue(&b);
    pt_tensor_release(h);
    luaL_pushresult(&b);
    return 1;
}

/* ---------------- arithmetic ---------------- */
static int pt_lua_binop(lua_State *L, pt_binop op) {
    double na = 0, nb = 0;
    int isa, isb;
    pt_tensor *a = pt_lua_check_tensor_or_number(L, 1, &na, &isa);
    pt_tensor *b = pt_lua_check_tensor_or_number(L, 2, &nb, &isb);
    pt_tensor *r = NULL;
    if (isa && isb) return luaL_error(L, "%s: expected at least one tensor", pt_binop_name(op));
    /* an integer tensor with a Lua integer: keep the scalar exact as a 0-d i64 tensor */
    int num_i = isb ? 2 : (isa ? 1 : 0);
    pt_tensor *other = isb ? a : b;
    if (num_i && lua_isinteger(L, num_i) && pt_dtype_is_int(other->dtype) && op != PT_BIN_DIV) {
        const lua_Integer v = lua_tointeger(L, num_i);
        pt_tensor *sd = NULL;
        pt_status st = PT_OK;
        if (other->device.type != PT_DEV_CPU && v >= -(INT64_C(1) << 53) && v <= (INT64_C(1) << 53)) {
            /* exact as a double: filled on the device (no host->device copy: capturable in a CUDA graph) */
            st = pt_tensor_full(&sd, PT_I64, other->device, 0, NULL, (double)v);
        } else { /* the CPU, or an integer beyond 2^53 (made exactly on the host, then moved) */
            pt_tensor *s = NULL;
            PT_LUA_CHECK(L, pt_tensor_empty(&s, PT_I64, PT_CPU, 0, NULL));
            *(int64_t *)pt_tensor_data(s) = (int64_t)v;
            sd = s;
            if (other->device.type != PT_DEV_CPU) {
                st = pt_tensor_to(&sd, s, PT_I64, other->device, 0);
                pt_tensor_release(s);
            }
        }
        if (!st) st = isb ? pt_binary(&r, op, a, sd) : pt_binary(&r, op, sd, b);
        pt_tensor_release(sd);
        PT_LUA_CHECK(L, st);
        pt_lua_push_tensor(L, r);
        return 1;
    }
    if (isb) PT_LUA_CHECK(L, pt_binary_scalar(&r, op, a, nb, 0));
    else if (isa) PT_LUA_CHECK(L, pt_binary_scalar(&r, op, b, na, 1));
    else PT_LUA_CHECK(L, pt_binary(&r, op, a, b));
    pt_lua_push_tensor(L, r);
    return 1;
}
#define BINOP(NAME, OP) \
    static int NAME(lua_State *L) { return pt_lua_binop(L, OP); }
BINOP(m_add, PT_BIN_ADD)
BINOP(m_sub, PT_BIN_SUB)
BINOP(m_mul, PT_BIN_MUL)
BINOP(m_div, PT_BIN_DIV)
BINOP(m_pow, PT_BIN_POW)
BINOP(m_maximum, PT_BIN_MAX)
BINOP(m_minimum, PT_BIN_MIN)
BINOP(m_eq, PT_BIN_EQ)
BINOP(m_ne, PT_BIN_NE)
BINOP(m_lt, PT_BIN_LT)
BINOP(m_le, PT_BIN_LE)
BINOP(m_gt, PT_BIN_GT)
BINOP(m_ge, PT_BIN_GE)

static int pt_lua_unop(lua_State *L, pt_unop op) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_unary(&r, op, a));
    pt_lua_push_tensor(L, r);
    return 1;
}
#define UNOP(NAME, OP) \
    static int NAME(lua_State *L) { return pt_lua_unop(L, OP); }
UNOP(m_neg, PT_UN_NEG)
UNOP(m_exp, PT_UN_EXP)
UNOP(m_log, PT_UN_LOG)
UNOP(m_tanh, PT_UN_TANH)
UNOP(m_sigmoid, PT_UN_SIGMOID)
UNOP(m_relu, PT_UN_RELU)
UNOP(m_sqrt, PT_UN_SQRT)
UNOP(m_rsqrt, PT_UN_RSQRT)
UNOP(m_abs, PT_UN_ABS)
UNOP(m_sign, PT_UN_SIGN)
UNOP(m_round, PT_UN_ROUND)
UNOP(m_sin, PT_UN_SIN)
UNOP(m_cos, PT_UN_COS)
UNOP(m_square, PT_UN_SQUARE)
UNOP(m_reciprocal, PT_UN_RECIPROCAL)

static int m_unm(lua_State *L) { return pt_lua_unop(L, PT_UN_NEG); }

static int m_leaky_relu(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_leaky_relu(&r, a, luaL_optnumber(L, 2, 0.01)));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_clamp(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    double lo = lua_isnoneornil(L, 2) ? -INFINITY : luaL_checknumber(L, 2);
    double hi = lua_isnoneornil(L, 3) ? INFINITY : luaL_checknumber(L, 3);
    PT_LUA_CHECK(L, pt_clamp(&r, a, lo, hi));
    pt_lua_push_tensor(L, r);
    return 1;
}

/* pt.where(cond, a, b): a/b may be numbers */
static pt_tensor *pt_lua_as_tensor(lua_State *L, int i, const pt_tensor *like) {
    if (lua_type(L, i) == LUA_TNUMBER) {
        pt_tensor *t = NULL;
        pt_status st = pt_tensor_full(&t, pt_dtype_is_float(like->dtype) ? like->dtype : PT_F32, like->device, 0,
                                      NULL, lua_tonumber(L, i));
        if (st) pt_lua_raise(L, st);
        pt_lua_push_tensor(L, t);
        lua_replace(L, i);
        return t;
    }
    return pt_lua_check_tensor(L, i);
}

static int l_where(lua_State *L) {
    pt_tensor *c = pt_lua_check_tensor(L, 1);
    pt_tensor *like = pt_lua_test_tensor(L, 2) ? pt_lua_test_tensor(L, 2) : pt_lua_test_tensor(L, 3);
    if (!like) like = c;
    pt_tensor *a = pt_lua_as_tensor(L, 2, like), *b = pt_lua_as_tensor(L, 3, like), *r = NULL;
    PT_LUA_CHECK(L, pt_where(&r, c, a, b));
    pt_lua_push_tensor(L, r);
    return 1;
}

/* ---------------- views ---------------- */
static int m_reshape(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int64_t shape[PT_MAX_DIMS];
    int n = pt_lua_check_shape(L, 2, shape);
    PT_LUA_CHECK(L, pt_reshape(&r, a, n, shape));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_transpose(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d0 = lua_isnoneornil(L, 2) ? -2 : pt_lua_dim(L, 2);
    int d1 = lua_isnoneornil(L, 3) ? -1 : pt_lua_dim(L, 3);
    PT_LUA_CHECK(L, pt_transpose(&r, a, d0, d1));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_permute(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int perm[PT_MAX_DIMS];
    int64_t p64[PT_MAX_DIMS];
    int n = pt_lua_check_shape(L, 2, p64);
    if (n != a->ndim) return luaL_error(L, "permute: %d dims given for a %d-d tensor", n, a->ndim);
    for (int i = 0; i < n; i++) {
        if (p64[i] == 0) return luaL_error(L, "permute: dims are 1-based");
        perm[i] = p64[i] > 0 ? (int)p64[i] - 1 : (int)p64[i];
    }
    PT_LUA_CHECK(L, pt_permute(&r, a, perm));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_narrow(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d = pt_lua_dim(L, 2);
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (start == 0) return luaL_error(L, "narrow: start is 1-based (1 is the first element)");
    PT_LUA_CHECK(L, pt_narrow(&r, a, d, start > 0 ? start - 1 : start, len));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_select(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d = pt_lua_dim(L, 2);
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i == 0) return luaL_error(L, "select: index is 1-based (1 is the first element, -1 the last)");
    PT_LUA_CHECK(L, pt_select(&r, a, d, i > 0 ? i - 1 : i));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_expand(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int64_t shape[PT_MAX_DIMS];
    int n = pt_lua_check_shape(L, 2, shape);
    PT_LUA_CHECK(L, pt_expand(&r, a, n, shape));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_contiguous(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_contiguous(&r, a));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_unsqueeze(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    lua_Integer d = luaL_checkinteger(L, 2);
    if (d == 0) return luaL_error(L, "unsqueeze: dims are 1-based");
    PT_LUA_CHECK(L, pt_unsqueeze(&r, a, d > 0 ? (int)d - 1 : (int)d));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_squeeze(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_squeeze(&r, a, pt_lua_dim(L, 2)));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int pt_lua_join(lua_State *L, int stack) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    if (n < 1) return luaL_error(L, "%s: expected a non-empty list of tensors", stack ? "stack" : "cat");
    if (n > 256) return luaL_error(L, "%s: at most 256 tensors", stack ? "stack" : "cat");
    pt_tensor *ts[256];
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ts[i] = pt_lua_check_tensor(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    int d = lua_isnoneornil(L, 2) ? 0 : pt_lua_dim(L, 2);
    pt_tensor *r = NULL;
    if (stack) PT_LUA_CHECK(L, pt_stack(&r, n, ts, d));
    else PT_LUA_CHECK(L, pt_cat(&r, n, ts, d));
    pt_lua_push_tensor(L, r);
    return 1;
}
static int l_cat(lua_State *L) { return pt_lua_join(L, 0); }
static int l_stack(lua_State *L) { return pt_lua_join(L, 1); }

/* t[i] -> select(1, i); t.grad / t.requires_grad fields; methods from the metatable */
static int m_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER) {
        pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
        lua_Integer i = luaL_checkinteger(L, 2);
        if (i == 0) return luaL_error(L, "tensor index is 1-based (t[1] is the first row)");
        PT_LUA_CHECK(L, pt_select(&r, a, 0, i > 0 ? i - 1 : i));
        pt_lua_push_tensor(L, r);
        return 1;
    }
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "grad") == 0) {
        pt_tensor *a = pt_lua_check_tensor(L, 1);
        if (!a->grad) {
            lua_pushnil(L);
        } else {
            pt_tensor_retain(a->grad);
            pt_lua_push_tensor(L, a->grad);
        }
        return 1;
    }
    if (k && strcmp(k, "requires_grad") == 0) {
        lua_pushboolean(L, pt_lua_check_tensor(L, 1)->requires_grad);
        return 1;
    }
    if (k && strcmp(k, "is_leaf") == 0) {
        lua_pushboolean(L, pt_lua_check_tensor(L, 1)->grad_fn == NULL);
        return 1;
    }
    if (k && strcmp(k, "grad_fn") == 0) {
        pt_tensor *a = pt_lua_check_tensor(L, 1);
        if (a->grad_fn) lua_pushstring(L, a->grad_fn->name);
        else lua_pushnil(L);
        return 1;
    }
    luaL_getmetatable(L, PT_TENSOR_MT);
    lua_getfield(L, -1, "__methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int m_newindex(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "requires_grad") == 0) {
        if (a->grad_fn && !lua_toboolean(L, 3))
            return luaL_error(L, "requires_grad: cannot turn off on a non-leaf tensor (use :detach())");
        if (!pt_dtype_is_float(a->dtype) && lua_toboolean(L, 3))
            return luaL_error(L, "requires_grad: only float tensors can require gradients (dtype %s)",
                              pt_dtype_name(a->dtype));
        a->requires_grad = lua_toboolean(L, 3);
        return 0;
    }
    if (strcmp(k, "grad") == 0) {
        if (lua_isnil(L, 3)) {
            pt_tensor_zero_grad(a);
            return 0;
        }
        pt_tensor *g = pt_lua_check_tensor(L, 3);
        if (g->ndim != a->ndim || memcmp(g->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim))
            return luaL_error(L, "grad: shape of the assigned gradient does not match the tensor");
        pt_tensor_retain(g);
        pt_tensor_zero_grad(a);
        a->grad = g;
        return 0;
    }
    if (strcmp(k, "retain_grad") == 0) {
        a->retain_grad = lua_toboolean(L, 3);
        return 0;
    }
    return luaL_error(L, "cannot set field '%s' of a tensor (settable: requires_grad, grad, retain_grad)", k);
}

static int m_len(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

/* ---------------- autograd ---------------- */
static int m_backward(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_tensor *g = lua_isnoneornil(L, 2) ? NULL : pt_lua_check_tensor(L, 2);
    PT_LUA_CHECK(L, pt_backward(t, g));
    return 0;
}

static int m_detach(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_tensor_detach(&r, t));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_zero_grad(lua_State *L) {
    pt_tensor_zero_grad(pt_lua_check_tensor(L, 1));
    return 0;
}

static int m_clone(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&r, t, t->dtype, t->device, 1));
    pt_lua_push_tensor(L, r);
    return 1;
}

/* in-place ops: refuse on leaves that require grad while grad mode is on */
static void pt_lua_check_inplace(lua_State *L, pt_tensor *t, const char *what) {
    if (pt_grad_enabled() && t->requires_grad)
        luaL_error(L, "%s: in-place change of a tensor that requires grad; do it inside pt.no_grad(...)", what);
}

static int m_copy_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1), *s = pt_lua_check_tensor(L, 2);
    pt_lua_check_inplace(L, t, "copy_");
    PT_LUA_CHECK(L, pt_tensor_copy_(t, s));
    lua_settop(L, 1);
    return 1;
}

static int m_fill_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_lua_check_inplace(L, t, "fill_");
    PT_LUA_CHECK(L, pt_tensor_fill_(t, luaL_checknumber(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int m_add_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_lua_check_inplace(L, t, "add_");
    double alpha = luaL_optnumber(L, 3, 1.0);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        pt_tensor *s = NULL;
        PT_LUA_CHECK(L, pt_tensor_full(&s, t->dtype, t->device, 0, NULL, lua_tonumber(L, 2)));
        pt_status st = pt_add_(t, s, alpha);
        pt_tensor_release(s);
        PT_LUA_CHECK(L, st);
    } else {
        PT_LUA_CHECK(L, pt_add_(t, pt_lua_check_tensor(L, 2), alpha));
    }
    lua_settop(L, 1);
    return 1;
}

static int m_mul_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_lua_check_inplace(L, t, "mul_");
    PT_LUA_CHECK(L, pt_mul_scalar_(t, luaL_checknumber(L, 2)));
    lua_settop(L, 1);
    return 1;
}

/* t:set(value, i, j, ...) and t:get(i, j, ...) with 1-based positions (CPU) */
static int pt_lua_flat_index(lua_State *L, pt_tensor *t, int first, int64_t *flat) {
    int n = lua_gettop(L) - first + 1;
    if (n != t->ndim) return luaL_error(L, "expected %d indices, got %d", t->ndim, n);
    int64_t f = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, first + d);
        if (i < 1 || i > t->shape[d])
            return luaL_error(L, "index %d out of range for dim %d of size %d (1-based)", (int)i, d + 1,
                              (int)t->shape[d]);
        f = f * t->shape[d] + (i - 1);
    }
    *flat = f;
    return 0;
}

static int m_get(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    int64_t f;
    pt_lua_flat_index(L, t, 2, &f);
    double v;
    PT_LUA_CHECK(L, pt_tensor_get_flat(t, f, &v));
    pt_lua_push_elem(L, t->dtype, v);
    return 1;
}

static int m_set(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
    pt_lua_check_inplace(L, t, "set");
    int64_t f;
    pt_lua_flat_index(L, t, 3, &f);
    PT_LUA_CHECK(L, pt_tensor_set_flat(t, f, v));
    return 0;
}

/* t:flat_get(i) / t:flat_set(i, v): element i (1-based) in row-major view order, CPU */
static int m_flat_get(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    if (t->dtype == PT_I64) {
        int64_t iv;
        PT_LUA_CHECK(L, pt_tensor_get_flat_i64(t, luaL_checkinteger(L, 2) - 1, &iv));
        lua_pushinteger(L, iv);
        return 1;
    }
    double v;
    PT_LUA_CHECK(L, pt_tensor_get_flat(t, luaL_checkinteger(L, 2) - 1, &v));
    pt_lua_push_elem(L, t->dtype, v);
    return 1;
}

static int m_flat_set(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_lua_check_inplace(L, t, "flat_set");
    double v = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : luaL_checknumber(L, 3);
    PT_LUA_CHECK(L, pt_tensor_set_flat(t, luaL_checkinteger(L, 2) - 1, v));
    return 0;
}

static int l_no_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int prev = pt_grad_set_enabled(0);
    int nargs = lua_gettop(L) - 1;
    int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
    pt_grad_set_enabled(prev);
    if (st != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_set_grad_enabled(lua_State *L) {
    lua_pushboolean(L, pt_grad_set_enabled(lua_toboolean(L, 1)));
    return 1;
}

static int l_grad_enabled(lua_State *L) {
    lua_pushboolean(L, pt_grad_enabled());
    return 1;
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, pt_lua_test_tensor(L, 1) != NULL);
    return 1;
}

static int l_stats(lua_State *L) {
    pt_tensor_stats s = pt_tensor_get_stats();
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, s.live_tensors);
    lua_setfield(L, -2, "live_tensors");
    lua_pushinteger(L, s.live_storages);
    lua_setfield(L, -2, "live_storages");
    lua_pushinteger(L, s.host_bytes);
    lua_setfield(L, -2, "host_bytes");
    lua_pushinteger(L, s.device_bytes);
    lua_setfield(L, -2, "device_bytes");
    return 1;
}

/* shares storage: do two tensors view the same memory? */
static int m_shares_storage(lua_State *L) {
    lua_pushboolean(L, pt_lua_check_tensor(L, 1)->storage == pt_lua_check_tensor(L, 2)->storage);
    return 1;
}

static const luaL_Reg pt_tensor_methods[] = {
    {"shape", m_shape}, {"size", m_size}, {"dim", m_dim}, {"numel", m_numel}, {"dtype", m_dtype},
    {"device", m_device}, {"stride", m_stride}, {"is_contiguous", m_is_contiguous}, {"to", m_to},
    {"item", m_item}, {"totable", m_totable}, {"get", m_get}, {"set", m_set},
    {"add", m_add}, {"sub", m_sub}, {"mul", m_mul}, {"div", m_div}, {"pow", m_pow},
    {"maximum", m_maximum}, {"minimum", m_minimum}, {"eq", m_eq}, {"ne", m_ne}, {"lt", m_lt},
    {"le", m_le}, {"gt", m_gt}, {"ge", m_ge}, {"neg", m_neg}, {"exp", m_exp}, {"log", m_log},
    {"tanh", m_tanh}, {"sigmoid", m_sigmoid}, {"relu", m_relu}, {"sqrt", m_sqrt}, {"rsqrt", m_rsqrt},
    {"abs", m_abs}, {"sign", m_sign}, {"round", m_round}, {"sin", m_sin}, {"cos", m_cos},
    {"square", m_square}, {"reciprocal", m_reciprocal}, {"leaky_relu", m_leaky_relu}, {"clamp", m_clamp},
    {"reshape", m_reshape}, {"view", m_reshape}, {"transpose", m_transpose}, {"permute", m_permute},
    {"narrow", m_narrow}, {"select", m_select}, {"expand", m_expand}, {"contiguous", m_contiguous},
    {"unsqueeze", m_unsqueeze}, {"squeeze", m_squeeze}, {"backward", m_backward}, {"detach", m_detach},
    {"zero_grad", m_zero_grad}, {"clone", m_clone}, {"copy_", m_copy_}, {"fill_", m_fill_},
    {"add_", m_add_}, {"mul_", m_mul_}, {"shares_storage", m_shares_storage}, {"release", t_release},
    {"flat_get", m_flat_get}, {"flat_set", m_flat_set}, {NULL, NULL}};

static const luaL_Reg pt_tensor_meta[] = {
    {"__gc", t_release}, {"__close", t_release}, {"__tostring", m_tostring}, {"__len", m_len},
    {"__index", m_index}, {"__newindex", m_newindex}, {"__add", m_add}, {"__sub", m_sub},
    {"__mul", m_mul}, {"__div", m_div}, {"__pow", m_pow}, {"__unm", m_unm}, {NULL, NULL}};

static const luaL_Reg pt_tensor_fns[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"full", l_full}, {"empty", l_empty},
    {"arange", l_arange}, {"cat", l_cat}, {"stack", l_stack}, {"where", l_where}, {"no_grad", l_no_grad},
    {"set_grad_enabled", l_set_grad_enabled}, {"grad_enabled", l_grad_enabled}, {"is_tensor", l_is_tensor},
    {"stats", l_stats}, {NULL, NULL}};

/* Other binding files add methods to the tensor metatable through this. */
void pt_lua_add_tensor_methods(lua_State *L, const luaL_Reg *fns) {
    pt_lua_ensure_tensor_metatable(L);
    luaL_getmetatable(L, PT_TENSOR_MT);
    lua_getfield(L, -1, "__methods");
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 2);
}

void pt_lua_ensure_tensor_metatable(lua_State *L) {
    if (luaL_getmetatable(L, PT_TENSOR_MT) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, PT_TENSOR_MT)) {
        luaL_setfuncs(L, pt_tensor_meta, 0);
        lua_newtable(L);
        luaL_setfuncs(L, pt_tensor_methods, 0);
        lua_setfield(L, -2, "__methods");
        lua_pushliteral(L, "proteus.Tensor");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

static int luaopen_pt_tensor(lua_State *L) {
    pt_lua_ensure_tensor_metatable(L);
    luaL_newlib(L, pt_tensor_fns);
    luaL_getmetatable(L, PT_TENSOR_MT);
    lua_getfield(L, -1, "__methods");
    lua_setfield(L, -3, "methods"); /* module.methods = the method table (for completion, docs) */
    lua_pop(L, 1);
    return 1;
}
PT_LUA_MODULE("proteus._tensor", luaopen_pt_tensor)
