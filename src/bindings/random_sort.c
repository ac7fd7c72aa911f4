/* random_sort.c (bindings) — modules "proteus._rng" and "proteus._sort" (gathered into `pt` by
 * lua/lib/proteus/init.lua).
 *
 *   pt.manual_seed(seed); pt.get_rng_state() -> {seed=, offset=}; pt.set_rng_state(s)
 *   pt.rand(shape[, opts]), pt.randn(shape[, opts]), pt.randint(lo, hi, shape[, opts]) (ints in [lo, hi)),
 *   pt.randperm(n) (i64, a permutation of 0..n-1); t:uniform_(lo, hi), t:normal_(mean, std)
 *   t:sort([dim][, descending]), t:topk(k[, dim][, largest]), t:kthvalue(k[, dim][, keepdim])
 *     -> values, indices (0-based positions); t:quantile(q[, dim][, keepdim]) (linear interpolation)
 * Random tensors are drawn on the CPU from the counter-based Philox stream (src/host/pt_rng.h) and
 * then moved to the requested device, so a seed gives the same numbers on every device.
 */
#include "../host/pt_rng.h"
#include "../kernels/pt_ops.h"
#include "pt_lua.h"

static int pt_cdim(lua_State *L, lua_Integer d) {
    if (d == 0) luaL_error(L, "dim 0 is not valid: dims are 1-based (1 is the first, -1 the last)");
    return d > 0 ? (int)(d - 1) : (int)d;
}

/* shape at index i (table or integers); returns the index after it */
static int pt_shape_arg(lua_State *L, int i, int *ndim, int64_t *shape) {
    *ndim = pt_lua_check_shape(L, i, shape);
    return lua_istable(L, i) ? i + 1 : i + *ndim;
}

static int pt_push_on_device(lua_State *L, pt_tensor *t, pt_device dev, int rg) {
    if (dev.type != PT_DEV_CPU) {
        pt_tensor *d = NULL;
        pt_status st = pt_tensor_to(&d, t, t->dtype, dev, 0);
        pt_tensor_release(t);
        PT_LUA_CHECK(L, st);
        t = d;
    }
    t->requires_grad = rg;
    pt_lua_push_tensor(L, t);
    return 1;
}

static int pt_lua_random(lua_State *L, int normal) {
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    int next = pt_shape_arg(L, 1, &ndim, shape);
    pt_dtype dt = PT_F32;
    pt_device dev = PT_CPU;
    int rg = 0;
    pt_lua_opts(L, next, &dt, &dev, &rg);
    if (!pt_dtype_is_float(dt)) return luaL_error(L, "%s: dtype %s is not a float dtype", normal ? "randn" : "rand",
                                                  pt_dtype_name(dt));
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, PT_CPU, ndim, shape));
    pt_status st = normal ? pt_rng_normal_(t, 0.0, 1.0) : pt_rng_uniform_(t, 0.0, 1.0);
    if (st) {
        pt_tensor_release(t);
        return pt_lua_raise(L, st);
    }
    return pt_push_on_device(L, t, dev, rg);
}
static int l_rand(lua_State *L) { return pt_lua_random(L, 0); }
static int l_randn(lua_State *L) { return pt_lua_random(L, 1); }

static int l_randint(lua_State *L) {
    lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
    if (hi <= lo) return luaL_error(L, "randint: empty range [%I, %I)", lo, hi);
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    int next = pt_shape_arg(L, 3, &ndim, shape);
    pt_dtype dt = PT_I64;
    pt_device dev = PT_CPU;
    int rg = 0;
    pt_lua_opts(L, next, &dt, &dev, &rg);
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, PT_CPU, ndim, shape));
    pt_status st = pt_rng_randint_(t, lo, hi);
    if (st) {
        pt_tensor_release(t);
        return pt_lua_raise(L, st);
    }
    return pt_push_on_device(L, t, dev, 0);
}

static int l_randperm(lua_State *L) {
    pt_tensor *t = NULL;
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return luaL_error(L, "randperm: n = %I is negative", n);
    pt_dtype dt = PT_I64;
    pt_device dev = PT_CPU;
    int rg = 0;
    pt_lua_opts(L, 2, &dt, &dev, &rg);
    if (dt != PT_I64) return luaL_error(L, "randperm: dtype %s; randperm makes i64 (cast the result)", pt_dtype_name(dt));
    if (rg) return luaL_error(L, "randperm: requires_grad makes no sense for an integer permutation");
    PT_LUA_CHECK(L, pt_rng_randperm_on(&t, n, dev));
    pt_lua_push_tensor(L, t);
    return 1;
}

static int l_manual_seed(lua_State *L) {
    pt_rng_manual_seed((uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

static int l_get_rng_state(lua_State *L) {
    pt_rng_state s = pt_rng_get_state();
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)s.seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)s.offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static int l_set_rng_state(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "seed");
    lua_getfield(L, 1, "offset");
    if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
        return luaL_error(L, "set_rng_state: expected {seed = integer, offset = integer}");
    pt_rng_state s = {(uint64_t)lua_tointeger(L, -2), (uint64_t)lua_tointeger(L, -1)};
    pt_rng_set_state(s);
    return 0;
}

static int m_uniform_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    PT_LUA_CHECK(L, pt_rng_uniform_(t, luaL_optnumber(L, 2, 0.0), luaL_optnumber(L, 3, 1.0)));
    lua_settop(L, 1);
    return 1;
}

static int m_normal_(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    PT_LUA_CHECK(L, pt_rng_normal_(t, luaL_optnumber(L, 2, 0.0), luaL_optnumber(L, 3, 1.0)));
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg rng_fns[] = {{"rand", l_rand},
                                   {"randn", l_randn},
                                   {"randint", l_randint},
                                   {"randperm", l_randperm},
                                   {"manual_seed", l_manual_seed},
                                   {"get_rng_state", l_get_rng_state},
                                   {"set_rng_state", l_set_rng_state},
                                   {NULL, NULL}};
static const luaL_Reg rng_methods[] = {{"uniform_", m_uniform_}, {"normal_", m_normal_}, {NULL, NULL}};

static int luaopen_pt_rng(lua_State *L) {
    pt_lua_add_tensor_methods(L, rng_methods);
    luaL_newlib(L, rng_fns);
    return 1;
}
PT_LUA_MODULE("proteus._rng", luaopen_pt_rng)

/* ---------------- sorting ---------------- */
static int push2(lua_State *L, pt_tensor *v, pt_tensor *i) {
    pt_lua_push_tensor(L, v);
    pt_lua_push_tensor(L, i);
    return 2;
}

static int m_sort(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *v = NULL, *i = NULL;
    int d = lua_isnoneornil(L, 2) ? -1 : pt_cdim(L, luaL_checkinteger(L, 2));
    PT_LUA_CHECK(L, pt_sort(&v, &i, a, d, lua_toboolean(L, 3)));
    return push2(L, v, i);
}

static int m_topk(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *v = NULL, *i = NULL;
    lua_Integer k = luaL_checkinteger(L, 2);
    int d = lua_isnoneornil(L, 3) ? -1 : pt_cdim(L, luaL_checkinteger(L, 3));
    int largest = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    PT_LUA_CHECK(L, pt_topk(&v, &i, a, k, d, largest));
    return push2(L, v, i);
}

static int m_kthvalue(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *v = NULL, *i = NULL;
    lua_Integer k = luaL_checkinteger(L, 2);
    int d = lua_isnoneornil(L, 3) ? -1 : pt_cdim(L, luaL_checkinteger(L, 3));
    PT_LUA_CHECK(L, pt_kthvalue(&v, &i, a, k, d, lua_toboolean(L, 4)));
    return push2(L, v, i);
}

static int m_quantile(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    double q = luaL_checknumber(L, 2);
    int d = lua_isnoneornil(L, 3) ? PT_ALL_DIMS : pt_cdim(L, luaL_checkinteger(L, 3));
    PT_LUA_CHECK(L, pt_quantile(&r, a, q, d, lua_toboolean(L, 4)));
    pt_lua_push_tensor(L, r);
    return 1;
}

static const luaL_Reg sort_methods[] = {
    {"sort", m_sort}, {"topk", m_topk}, {"kthvalue", m_kthvalue}, {"quantile", m_quantile}, {NULL, NULL}};

static int luaopen_pt_sort(lua_State *L) {
    pt_lua_add_tensor_methods(L, sort_methods);
    lua_newtable(L);
    return 1;
}
PT_LUA_MODULE("proteus._sort", luaopen_pt_sort)
