/* dist.c (bindings) — the Lua module "proteus._dist": collectives over pt_dist.h. The public
 * module is lua/lib/proteus/dist.lua (helpers: bucketed gradient all-reduce, round-robin and
 * parallel Muon, ledger merge, rank-0 logging); docs/distributed.md has the whole picture.
 *
 *   local D = require "proteus._dist"
 *   D.init{timeout = 600}   --> {backend = "single"|"mpi", rank, world, local_rank, local_world, timeout}
 *   D.rank(), D.world(), D.local_rank(), D.local_world(), D.backend(), D.has_mpi(), D.has_nccl()
 *   D.all_reduce(t, "sum"|"avg"|"max"|"min")   -- in place, returns t
 *   D.reduce_scatter(t, op)  --> shard [d1/W, ...] (dim 1 of t divisible by the world size)
 *   D.all_gather(t)          --> [W·d1, ...] (the ranks' tensors stacked along dim 1)
 *   D.broadcast(t, root)     -- in place (root 0-based, default 0), returns t
 *   D.barrier(), D.timeout(), D.set_timeout(s), D.abort(msg [, code])
 *
 * Every function initialises the backend on first use. Tests: tests/lua/test_dist.lua,
 * tests/cli/test_dist_mpirun.sh.
 */
#include "../host/pt_dist.h"
#include "pt_lua.h"

static void ensure(lua_State *L) {
    if (!pt_dist_initialized()) {
        pt_status s = pt_dist_init(0);
        if (s != PT_OK)
            pt_lua_raise(L, s);
    }
}

static int info_table(lua_State *L) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, pt_dist_backend_name());
    lua_setfield(L, -2, "backend");
    lua_pushinteger(L, pt_dist_rank());
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, pt_dist_world());
    lua_setfield(L, -2, "world");
    lua_pushinteger(L, pt_dist_local_rank());
    lua_setfield(L, -2, "local_rank");
    lua_pushinteger(L, pt_dist_local_world());
    lua_setfield(L, -2, "local_world");
    lua_pushnumber(L, pt_dist_timeout());
    lua_setfield(L, -2, "timeout");
    return 1;
}

static int l_init(lua_State *L) {
    double timeout = 0;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
            timeout = luaL_checknumber(L, -1);
            if (!(timeout > 0))
                return luaL_error(L, "dist.init: timeout = %f; give a number of seconds > 0 "
                                     "(dist.set_timeout(0) turns the watchdog off)", timeout);
        }
        lua_pop(L, 1);
    }
    PT_LUA_CHECK(L, pt_dist_init(timeout));
    return info_table(L);
}

static int l_info(lua_State *L) {
    ensure(L);
    return info_table(L);
}

static int l_rank(lua_State *L) {
    ensure(L);
    lua_pushinteger(L, pt_dist_rank());
    return 1;
}

static int l_world(lua_State *L) {
    ensure(L);
    lua_pushinteger(L, pt_dist_world());
    return 1;
}

static int l_local_rank(lua_State *L) {
    ensure(L);
    lua_pushinteger(L, pt_dist_local_rank());
    return 1;
}

static int l_local_world(lua_State *L) {
    ensure(L);
    lua_pushinteger(L, pt_dist_local_world());
    return 1;
}

static int l_backend(lua_State *L) {
    ensure(L);
    lua_pushstring(L, pt_dist_backend_name());
    return 1;
}

static int l_has_mpi(lua_State *L) {
    lua_pushboolean(L, pt_dist_has_mpi());
    return 1;
}

static int l_has_nccl(lua_State *L) {
    lua_pushboolean(L, pt_dist_has_nccl());
    return 1;
}

static pt_dist_op check_op(lua_State *L, int i) {
    pt_dist_op op = PT_RED_SUM;
    if (!lua_isnoneornil(L, i)) {
        pt_status s = pt_dist_op_parse(luaL_checkstring(L, i), &op);
        if (s != PT_OK)
            pt_lua_raise(L, s);
    }
    return op;
}

static int l_all_reduce(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_dist_op op = check_op(L, 2);
    PT_LUA_CHECK(L, pt_dist_all_reduce(t, op));
    lua_settop(L, 1);
    return 1;
}

static int l_reduce_scatter(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    pt_dist_op op = check_op(L, 2);
    ensure(L);
    int W = pt_dist_world();
    if (t->ndim < 1 || t->shape[0] % W != 0)
        return luaL_error(L, "dist.reduce_scatter: dim 1 of the input (%d) must be a multiple of the world size %d; "
                             "pad it (dist.pad_rows)", t->ndim < 1 ? 0 : (int)t->shape[0], W);
    int64_t shape[PT_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    shape[0] /= W;
    pt_tensor *out = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&out, t->dtype, t->device, t->ndim, shape));
    pt_lua_push_tensor(L, out);
    PT_LUA_CHECK(L, pt_dist_reduce_scatter(out, t, op));
    return 1;
}

static int l_all_gather(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    ensure(L);
    int64_t shape[PT_MAX_DIMS];
    int nd = t->ndim;
    if (nd == 0) {
        shape[0] = pt_dist_world();
        nd = 1;
    } else {
        for (int d = 0; d < nd; d++)
            shape[d] = t->shape[d];
        shape[0] *= pt_dist_world();
    }
    pt_tensor *out = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&out, t->dtype, t->device, nd, shape));
    pt_lua_push_tensor(L, out);
    PT_LUA_CHECK(L, pt_dist_all_gather(out, t));
    return 1;
}

static int l_broadcast(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1);
    int root = (int)luaL_optinteger(L, 2, 0);
    PT_LUA_CHECK(L, pt_dist_broadcast(t, root));
    lua_settop(L, 1);
    return 1;
}

static int l_barrier(lua_State *L) {
    PT_LUA_CHECK(L, pt_dist_barrier());
    return 0;
}

static int l_timeout(lua_State *L) {
    ensure(L);
    lua_pushnumber(L, pt_dist_timeout());
    return 1;
}

static int l_set_timeout(lua_State *L) {
    PT_LUA_CHECK(L, pt_dist_set_timeout(luaL_checknumber(L, 1)));
    return 0;
}

static int l_abort(lua_State *L) {
    const char *msg = luaL_checkstring(L, 1);
    int code = (int)luaL_optinteger(L, 2, 1);
    return pt_lua_raise(L, pt_dist_abort(msg, code));
}

static const luaL_Reg dist_fns[] = {
    {"init", l_init},           {"info", l_info},
    {"rank", l_rank},           {"world", l_world},
    {"local_rank", l_local_rank}, {"local_world", l_local_world},
    {"backend", l_backend},     {"has_mpi", l_has_mpi},
    {"has_nccl", l_has_nccl},   {"all_reduce", l_all_reduce},
    {"reduce_scatter", l_reduce_scatter}, {"all_gather", l_all_gather},
    {"broadcast", l_broadcast}, {"barrier", l_barrier},
    {"timeout", l_timeout},     {"set_timeout", l_set_timeout},
    {"abort", l_abort},         {NULL, NULL}};

static int luaopen_dist(lua_State *L) {
    luaL_newlib(L, dist_fns);
    return 1;
}

PT_LUA_MODULE("proteus._dist", luaopen_dist)
