/* ops.c (bindings) — tensor methods for reductions, softmax and indexing (modules "proteus._reduce"
 * and "proteus._index"; lua/lib/proteus/init.lua requires them and they add methods to every tensor).
 *
 *   t:sum([dims][, keepdim])   dims: nil (all), a dim, or a list of dims (1-based, negative from the end)
 *   t:mean, t:var(dims, correction = 1, keepdim), t:std, t:norm(p = 2, dims, keepdim)
 *   t:max([dim][, keepdim]) -> values, indices (0-based i64 positions; no dim: the global max, 0-d)
 *   t:min, t:argmax(dim, keepdim), t:softmax(dim), t:log_softmax(dim)
 *   t:index_select(dim, idx), t:gather(dim, idx), t:scatter_add(dim, idx, src), pt.embedding(w, idx)
 * Index tensors hold 0-based positions (data); dims are 1-based (API positions).
 */
#include <math.h>

#include "../kernels/pt_ops.h"
#include "pt_lua.h"

static int pt_lua_cdim(lua_State *L, lua_Integer d) {
    if (d == 0) luaL_error(L, "dim 0 is not valid: dims are 1-based (1 is the first, -1 the last)");
    return d > 0 ? (int)(d - 1) : (int)d;
}

/* dims at index i: nil -> 0 dims (all), integer, or list */
static int pt_lua_dims(lua_State *L, int i, int *dims) {
    if (lua_isnoneornil(L, i)) return 0;
    if (lua_isinteger(L, i)) {
        dims[0] = pt_lua_cdim(L, lua_tointeger(L, i));
        return 1;
    }
    luaL_checktype(L, i, LUA_TTABLE);
    int n = (int)luaL_len(L, i);
    if (n > PT_MAX_DIMS) luaL_error(L, "too many dims (%d)", n);
    for (int k = 0; k < n; k++) {
        lua_geti(L, i, k + 1);
        dims[k] = pt_lua_cdim(L, luaL_checkinteger(L, -1));
        lua_pop(L, 1);
    }
    if (n == 0) luaL_error(L, "empty list of dims (pass nil to reduce over all dims)");
    return n;
}

static int r_push(lua_State *L, pt_tensor *r) {
    pt_lua_push_tensor(L, r);
    return 1;
}

static int m_sum(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int dims[PT_MAX_DIMS];
    int n = pt_lua_dims(L, 2, dims);
    PT_LUA_CHECK(L, pt_sum(&r, a, n, dims, lua_toboolean(L, 3)));
    return r_push(L, r);
}

static int m_mean(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int dims[PT_MAX_DIMS];
    int n = pt_lua_dims(L, 2, dims);
    PT_LUA_CHECK(L, pt_mean(&r, a, n, dims, lua_toboolean(L, 3)));
    return r_push(L, r);
}

static int pt_lua_varstd(lua_State *L, int is_std) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int dims[PT_MAX_DIMS];
    int n = pt_lua_dims(L, 2, dims);
    int corr = (int)luaL_optinteger(L, 3, 1);
    int keep = lua_toboolean(L, 4);
    if (is_std) PT_LUA_CHECK(L, pt_std(&r, a, n, dims, corr, keep));
    else PT_LUA_CHECK(L, pt_var(&r, a, n, dims, corr, keep));
    return r_push(L, r);
}
static int m_var(lua_State *L) { return pt_lua_varstd(L, 0); }
static int m_std(lua_State *L) { return pt_lua_varstd(L, 1); }

static int m_norm(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    double p = luaL_optnumber(L, 2, 2.0);
    int dims[PT_MAX_DIMS];
    int n = pt_lua_dims(L, 3, dims);
    PT_LUA_CHECK(L, pt_norm(&r, a, p, n, dims, lua_toboolean(L, 4)));
    return r_push(L, r);
}

static int pt_lua_maxmin(lua_State *L, int is_max) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *v = NULL, *idx = NULL;
    if (lua_isnoneornil(L, 2)) { /* global: flatten */
        pt_tensor *f = NULL;
        int64_t m1 = -1;
        PT_LUA_CHECK(L, pt_reshape(&f, a, 1, &m1));
        pt_status st = is_max ? pt_max(&v, NULL, f, 0, 0) : pt_min(&v, NULL, f, 0, 0);
        pt_tensor_release(f);
        PT_LUA_CHECK(L, st);
        return r_push(L, v);
    }
    int d = pt_lua_cdim(L, luaL_checkinteger(L, 2));
    int keep = lua_toboolean(L, 3);
    if (is_max) PT_LUA_CHECK(L, pt_max(&v, &idx, a, d, keep));
    else PT_LUA_CHECK(L, pt_min(&v, &idx, a, d, keep));
    pt_lua_push_tensor(L, v);
    pt_lua_push_tensor(L, idx);
    return 2;
}
static int m_max(lua_State *L) { return pt_lua_maxmin(L, 1); }
static int m_min(lua_State *L) { return pt_lua_maxmin(L, 0); }

static int m_argmax(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    if (lua_isnoneornil(L, 2)) {
        pt_tensor *f = NULL;
        int64_t m1 = -1;
        PT_LUA_CHECK(L, pt_reshape(&f, a, 1, &m1));
        pt_status st = pt_argmax(&r, f, 0, 0);
        pt_tensor_release(f);
        PT_LUA_CHECK(L, st);
        return r_push(L, r);
    }
    PT_LUA_CHECK(L, pt_argmax(&r, a, pt_lua_cdim(L, luaL_checkinteger(L, 2)), lua_toboolean(L, 3)));
    return r_push(L, r);
}

static int m_softmax(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_softmax(&r, a, pt_lua_cdim(L, luaL_optinteger(L, 2, -1))));
    return r_push(L, r);
}

static int m_log_softmax(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_log_softmax(&r, a, pt_lua_cdim(L, luaL_optinteger(L, 2, -1))));
    return r_push(L, r);
}

static const luaL_Reg reduce_methods[] = {
    {"sum", m_sum}, {"mean", m_mean}, {"var", m_var}, {"std", m_std}, {"norm", m_norm},
    {"max", m_max}, {"min", m_min}, {"argmax", m_argmax}, {"softmax", m_softmax},
    {"log_softmax", m_log_softmax}, {NULL, NULL}};

static int luaopen_pt_reduce(lua_State *L) {
    pt_lua_add_tensor_methods(L, reduce_methods);
    lua_newtable(L);
    return 1;
}
PT_LUA_MODULE("proteus._reduce", luaopen_pt_reduce)

/* ---------------- indexing ---------------- */
static int m_index_select(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d = pt_lua_cdim(L, luaL_checkinteger(L, 2));
    PT_LUA_CHECK(L, pt_index_select(&r, a, d, pt_lua_check_tensor(L, 3)));
    return r_push(L, r);
}

static int m_gather(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d = pt_lua_cdim(L, luaL_checkinteger(L, 2));
    PT_LUA_CHECK(L, pt_gather(&r, a, d, pt_lua_check_tensor(L, 3)));
    return r_push(L, r);
}

static int m_scatter_add(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    int d = pt_lua_cdim(L, luaL_checkinteger(L, 2));
    PT_LUA_CHECK(L, pt_scatter_add(&r, a, d, pt_lua_check_tensor(L, 3), pt_lua_check_tensor(L, 4)));
    return r_push(L, r);
}

static int l_embedding(lua_State *L) {
    pt_tensor *w = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_embedding(&r, w, pt_lua_check_tensor(L, 2)));
    return r_push(L, r);
}

static const luaL_Reg index_methods[] = {
    {"index_select", m_index_select}, {"gather", m_gather}, {"scatter_add", m_scatter_add}, {NULL, NULL}};
static const luaL_Reg index_fns[] = {{"embedding", l_embedding}, {NULL, NULL}};

static int luaopen_pt_index(lua_State *L) {
    pt_lua_add_tensor_methods(L, index_methods);
    luaL_newlib(L, index_fns);
    return 1;
}
PT_LUA_MODULE("proteus._index", luaopen_pt_index)
