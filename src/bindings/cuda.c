/* bindings/cuda.c — module "proteus._cuda": the CUDA backend seen from Lua (wrapped by
 * lua/lib/proteus/cuda.lua).
 *
 *   local C = require "proteus._cuda"
 *   C.built()                 -- true when this proteus was compiled with nvcc
 *   C.is_available()          -- true when built and a device is present
 *   C.unavailable_reason()    -- why not ("" when available)
 *   C.device_count()          C.device_name([dev])      C.device_info([dev]) -> table
 *   C.memory_stats([dev])     -- {allocated_bytes=, reserved_bytes=, peak_allocated_bytes=, n_allocs=, ...}
 *   C.reset_peak_stats([dev]) C.empty_cache([dev])      C.synchronize([dev])
 *   local e = C.event(); e:record(); ...; e2:record(); e:elapsed_ms(e2)   -- on the compute stream
 *   C.graph_begin([dev]); ...; local g = C.graph_end(keep)  -- or C.graph_abort() after an error
 *   g:replay(); g:stats(); g:outputs(); g:free()             -- keep: table kept alive with g
 *   C.capturing()             -- the device this thread is capturing, or nil
 * dev is a CUDA ordinal (0 = "cuda:0") or a device string ("cuda:1"); default 0.
 * Without CUDA in the build every function but built/is_available/unavailable_reason/capturing raises
 * "CUDA not built into this proteus (nvcc was not found at build time)".
 * Tests: tests/gpu/test_runtime.lua, tests/gpu/test_graph.lua (skip without a device),
 * tests/lua/test_cuda_binding.lua, tests/lua/test_graph_api.lua.
 */
#include <lauxlib.h>
#include <lua.h>

#include "pt_lua.h"

#ifdef PT_WITH_CUDA
#include "../kernels/cuda/pt_cuda.h"
#endif

#define PT_CUDA_NOT_BUILT "CUDA not built into this proteus (nvcc was not found at build time)"

static int l_built(lua_State *L) {
#ifdef PT_WITH_CUDA
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    return 1;
}

static int l_is_available(lua_State *L) {
#ifdef PT_WITH_CUDA
    lua_pushboolean(L, pt_cuda_device_count() > 0);
#else
    lua_pushboolean(L, 0);
#endif
    return 1;
}

static int l_unavailable_reason(lua_State *L) {
#ifdef PT_WITH_CUDA
    lua_pushstring(L, pt_cuda_unavailable_reason());
#else
    lua_pushstring(L, PT_CUDA_NOT_BUILT);
#endif
    return 1;
}

#ifdef PT_WITH_CUDA

#define PT_CUDA_EVENT_MT "proteus.CudaEvent"
#define PT_CUDA_GRAPH_MT "proteus.CudaGraph"

/* optional device argument: integer ordinal or "cuda[:N]" */
static int pt_lua_cuda_dev(lua_State *L, int i) {
    if (lua_isnoneornil(L, i)) return 0;
    if (lua_type(L, i) == LUA_TSTRING) {
        pt_device d;
        PT_LUA_CHECK(L, pt_device_parse(lua_tostring(L, i), &d));
        if (d.type != PT_DEV_CUDA) return luaL_argerror(L, i, "expected a CUDA device (cuda or cuda:N)");
        return d.index;
    }
    lua_Integer n = luaL_checkinteger(L, i);
    if (n < 0 || n >= PT_CUDA_MAX_DEVICES) return luaL_argerror(L, i, "CUDA device ordinal out of range");
    return (int)n;
}

static int l_device_count(lua_State *L) {
    lua_pushinteger(L, pt_cuda_device_count());
    return 1;
}

static int l_device_name(lua_State *L) {
    pt_cuda_device_info info;
    PT_LUA_CHECK(L, pt_cuda_get_device_info(pt_lua_cuda_dev(L, 1), &info));
    lua_pushstring(L, info.name);
    return 1;
}

static void pt_set_int(lua_State *L, const char *k, int64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int l_device_info(lua_State *L) {
    pt_cuda_device_info info;
    PT_LUA_CHECK(L, pt_cuda_get_device_info(pt_lua_cuda_dev(L, 1), &info));
    lua_createtable(L, 0, 8);
    lua_pushstring(L, info.name);
    lua_setfield(L, -2, "name");
    pt_set_int(L, "major", info.major);
    pt_set_int(L, "minor", info.minor);
    pt_set_int(L, "sm_count", info.sm_count);
    pt_set_int(L, "total_bytes", (int64_t)info.total_bytes);
    pt_set_int(L, "l2_bytes", (int64_t)info.l2_bytes);
    pt_set_int(L, "smem_per_block_optin", (int64_t)info.smem_per_block_optin);
    return 1;
}

static int l_memory_stats(lua_State *L) {
    pt_cuda_mem_stats s;
    PT_LUA_CHECK(L, pt_cuda_memory_stats(pt_lua_cuda_dev(L, 1), &s));
    lua_createtable(L, 0, 17);
    pt_set_int(L, "allocated_bytes", s.allocated_bytes);
    pt_set_int(L, "requested_bytes", s.requested_bytes);
    pt_set_int(L, "reserved_bytes", s.reserved_bytes);
    pt_set_int(L, "cached_bytes", s.cached_bytes);
    pt_set_int(L, "peak_allocated_bytes", s.peak_allocated_bytes);
    pt_set_int(L, "peak_reserved_bytes", s.peak_reserved_bytes);
    pt_set_int(L, "n_allocs", s.n_allocs);
    pt_set_int(L, "n_frees", s.n_frees);
    pt_set_int(L, "n_cache_hits", s.n_cache_hits);
    pt_set_int(L, "n_cuda_mallocs", s.n_cuda_mallocs);
    pt_set_int(L, "n_cuda_frees", s.n_cuda_frees);
    pt_set_int(L, "n_oom_flushes", s.n_oom_flushes);
    pt_set_int(L, "n_active_blocks", s.n_active_blocks);
    pt_set_int(L, "n_cached_blocks", s.n_cached_blocks);
    pt_set_int(L, "n_graph_pools", s.n_graph_pools);
    pt_set_int(L, "graph_pool_reserved_bytes", s.graph_pool_reserved_bytes);
    pt_set_int(L, "graph_pool_allocated_bytes", s.graph_pool_allocated_bytes);
    return 1;
}

static int l_reset_peak_stats(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_reset_peak_stats(pt_lua_cuda_dev(L, 1)));
    return 0;
}

static int l_empty_cache(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_empty_cache(lua_isnoneornil(L, 1) ? -1 : pt_lua_cuda_dev(L, 1)));
    return 0;
}

static int l_synchronize(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_synchronize(pt_lua_cuda_dev(L, 1)));
    return 0;
}

/* ---- events: userdata holding a pointer that becomes NULL once released ---- */
typedef struct {
    pt_cuda_event *ev;
} pt_lua_event;

static pt_cuda_event *pt_check_event(lua_State *L, int i) {
    pt_lua_event *e = luaL_checkudata(L, i, PT_CUDA_EVENT_MT);
    if (!e->ev) luaL_argerror(L, i, "CUDA event already released");
    return e->ev;
}

static int l_event(lua_State *L) {
    pt_lua_event *e = lua_newuserdatauv(L, sizeof *e, 0);
    e->ev = NULL;
    luaL_setmetatable(L, PT_CUDA_EVENT_MT);
    PT_LUA_CHECK(L, pt_cuda_event_new(&e->ev));
    return 1;
}

static int ev_record(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_event_record(pt_check_event(L, 1)));
    lua_settop(L, 1);
    return 1;
}

static int ev_synchronize(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_event_synchronize(pt_check_event(L, 1)));
    return 0;
}

static int ev_elapsed_ms(lua_State *L) {
    double ms = 0;
    PT_LUA_CHECK(L, pt_cuda_event_elapsed_ms(pt_check_event(L, 1), pt_check_event(L, 2), &ms));
    lua_pushnumber(L, ms);
    return 1;
}

static int ev_release(lua_State *L) {
    pt_lua_event *e = luaL_checkudata(L, 1, PT_CUDA_EVENT_MT);
    pt_cuda_event_free(e->ev);
    e->ev = NULL;
    return 0;
}

static int ev_tostring(lua_State *L) {
    pt_lua_event *e = luaL_checkudata(L, 1, PT_CUDA_EVENT_MT);
    lua_pushstring(L, e->ev ? "CudaEvent" : "CudaEvent (released)");
    return 1;
}

static const luaL_Reg ev_methods[] = {{"record", ev_record},       {"synchronize", ev_synchronize},
                                      {"elapsed_ms", ev_elapsed_ms}, {"release", ev_release},
                                      {NULL, NULL}};
static const luaL_Reg ev_meta[] = {{"__gc", ev_release}, {"__close", ev_release}, {"__tostring", ev_tostring},
                                   {NULL, NULL}};

/* ---- graphs: userdata holding a pointer that becomes NULL once freed; user value 1 = the table
 * of tensors kept alive with the graph (the captured function's results) ---- */
typedef struct {
    pt_cuda_graph *g;
} pt_lua_graph;

static pt_cuda_graph *pt_check_graph(lua_State *L, int i) {
    pt_lua_graph *u = luaL_checkudata(L, i, PT_CUDA_GRAPH_MT);
    if (!u->g) luaL_error(L, "CUDA graph: already freed (graph:free() was called)");
    return u->g;
}

static int l_graph_begin(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_graph_begin(pt_lua_cuda_dev(L, 1)));
    return 0;
}

static int l_graph_end(lua_State *L) {
    pt_lua_graph *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->g = NULL;
    luaL_setmetatable(L, PT_CUDA_GRAPH_MT);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, 1);
    }
    PT_LUA_CHECK(L, pt_cuda_graph_end(&u->g));
    return 1;
}

static int l_graph_abort(lua_State *L) {
    (void)L;
    pt_cuda_graph_abort();
    return 0;
}

static int l_capturing(lua_State *L) {
    int d = pt_cuda_graph_capturing();
    if (d < 0) lua_pushnil(L);
    else lua_pushinteger(L, d);
    return 1;
}

static int gr_replay(lua_State *L) {
    PT_LUA_CHECK(L, pt_cuda_graph_replay(pt_check_graph(L, 1)));
    return 0;
}

static int gr_stats(lua_State *L) {
    pt_cuda_graph_stats s;
    PT_LUA_CHECK(L, pt_cuda_graph_get_stats(pt_check_graph(L, 1), &s));
    lua_createtable(L, 0, 13);
    pt_set_int(L, "device", s.device);
    pt_set_int(L, "nodes", s.nodes);
    pt_set_int(L, "replays", s.replays);
    pt_set_int(L, "pool_reserved_bytes", s.pool.reserved_bytes);
    pt_set_int(L, "pool_allocated_bytes", s.pool.allocated_bytes);
    pt_set_int(L, "pool_peak_allocated_bytes", s.pool.peak_allocated_bytes);
    pt_set_int(L, "pool_blocks", s.pool.n_blocks);
    pt_set_int(L, "pool_allocs", s.pool.n_allocs);
    pt_set_int(L, "pool_frees", s.pool.n_frees);
    pt_set_int(L, "pool_reuses", s.pool.n_reuses);
    pt_set_int(L, "pool_from_cache", s.pool.n_from_cache);
    pt_set_int(L, "pool_cuda_mallocs", s.pool.n_cuda_mallocs);
    pt_set_int(L, "pool_adopted", s.pool.n_adopted);
    return 1;
}

/* the captured function's results, kept alive with the graph */
static int gr_outputs(lua_State *L) {
    pt_check_graph(L, 1);
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) return 0;
    int t = lua_gettop(L);
    lua_getfield(L, t, "n");
    lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lua_rawlen(L, t);
    lua_pop(L, 1);
    luaL_checkstack(L, (int)n, "too many graph outputs");
    for (lua_Integer i = 1; i <= n; i++) lua_rawgeti(L, t, i);
    return (int)n;
}

static int gr_free(lua_State *L) {
    pt_lua_graph *u = luaL_checkudata(L, 1, PT_CUDA_GRAPH_MT);
    pt_cuda_graph_free(u->g);
    u->g = NULL;
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* the kept tensors may go now */
    return 0;
}

static int gr_tostring(lua_State *L) {
    pt_lua_graph *u = luaL_checkudata(L, 1, PT_CUDA_GRAPH_MT);
    pt_cuda_graph_stats s;
    if (u->g && pt_cuda_graph_get_stats(u->g, &s) == PT_OK)
        lua_pushfstring(L, "CudaGraph (cuda:%d, %d nodes, %d replays)", s.device, (int)s.nodes, (int)s.replays);
    else
        lua_pushstring(L, "CudaGraph (freed)");
    return 1;
}

static const luaL_Reg gr_methods[] = {{"replay", gr_replay}, {"stats", gr_stats}, {"outputs", gr_outputs},
                                      {"free", gr_free},     {NULL, NULL}};
static const luaL_Reg gr_meta[] = {{"__gc", gr_free}, {"__close", gr_free}, {"__tostring", gr_tostring},
                                   {NULL, NULL}};

static const luaL_Reg cuda_fns[] = {
    {"built", l_built},
    {"is_available", l_is_available},
    {"unavailable_reason", l_unavailable_reason},
    {"device_count", l_device_count},
    {"device_name", l_device_name},
    {"device_info", l_device_info},
    {"memory_stats", l_memory_stats},
    {"reset_peak_stats", l_reset_peak_stats},
    {"empty_cache", l_empty_cache},
    {"synchronize", l_synchronize},
    {"event", l_event},
    {"graph_begin", l_graph_begin},
    {"graph_end", l_graph_end},
    {"graph_abort", l_graph_abort},
    {"capturing", l_capturing},
    {NULL, NULL},
};

static int luaopen_cuda(lua_State *L) {
    if (luaL_newmetatable(L, PT_CUDA_EVENT_MT)) {
        luaL_setfuncs(L, ev_meta, 0);
        luaL_newlib(L, ev_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, PT_CUDA_GRAPH_MT)) {
        luaL_setfuncs(L, gr_meta, 0);
        luaL_newlib(L, gr_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, cuda_fns);
    return 1;
}

#else /* no CUDA in this build */

static int l_not_built(lua_State *L) { return luaL_error(L, PT_CUDA_NOT_BUILT); }
static int l_capturing(lua_State *L) {
    lua_pushnil(L);
    return 1;
}
static int l_graph_abort(lua_State *L) {
    (void)L;
    return 0;
}

static const luaL_Reg cuda_fns[] = {
    {"built", l_built},
    {"is_available", l_is_available},
    {"unavailable_reason", l_unavailable_reason},
    {"device_count", l_not_built},
    {"device_name", l_not_built},
    {"device_info", l_not_built},
    {"memory_stats", l_not_built},
    {"reset_peak_stats", l_not_built},
    {"empty_cache", l_not_built},
    {"synchronize", l_not_built},
    {"event", l_not_built},
    {"graph_begin", l_not_built},
    {"graph_end", l_not_built},
    {"graph_abort", l_graph_abort},
    {"capturing", l_capturing},
    {NULL, NULL},
};

static int luaopen_cuda(lua_State *L) {
    luaL_newlib(L, cuda_fns);
    return 1;
}

#endif

PT_LUA_MODULE("proteus._cuda", luaopen_cuda)
