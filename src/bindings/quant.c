/* quant.c (bindings) — Lua module "proteus._quant": the quantization hot loops of
 * src/kernels/pt_quant.h, plus an atomic whole-file write for artifact bytes. The public API
 * (schemes, policies, pruning, Hessians) is lua/lib/proteus/quant.lua and lua/lib/proteus/artifact.lua.
 *
 *   local Q = require "proteus._quant"
 *   local q, err = Q.rows(w, {scale = s, clip = c, err_scale = s16, qmin = -31, qmax = 31})
 *       -- q: i8 [R, C]; err: f64 [R] Σ(w − q·err_scale)² (only when err_scale is given)
 *   local w = Q.dequant(q, scale)           -- f32, q · scale per row (or one scale per tensor)
 *   local q = Q.gptq(w, H, scale, {qmin = -31, qmax = 31, damp = 0.01, block = 128})
 *   local n = Q.write_atomic(path, bytes)   -- temp file, fsync, rename (src/host/pt_fileio.h)
 *
 * Test: build/proteus tests/run.lua tests/lua/test_quant.lua
 */
#include "../host/pt_fileio.h"
#include "../kernels/pt_quant.h"
#include "pt_lua.h"

static pt_tensor *opt_tensor(lua_State *L, int t, const char *k, int required) {
    lua_getfield(L, t, k);
    pt_tensor *v = NULL;
    if (!lua_isnil(L, -1)) {
        v = pt_lua_test_tensor(L, -1);
        if (!v) luaL_error(L, "option '%s' must be a tensor, got %s", k, luaL_typename(L, -1));
    } else if (required) {
        luaL_error(L, "option '%s' is required (a tensor)", k);
    }
    lua_pop(L, 1); /* the option table keeps the tensor alive */
    return v;
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def) {
    lua_getfield(L, t, k);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "option '%s' must be an integer, got %s", k, luaL_typename(L, -1));
        v = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static double opt_num(lua_State *L, int t, const char *k, double def) {
    lua_getfield(L, t, k);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int l_rows(lua_State *L) {
    pt_tensor *w = pt_lua_check_tensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    pt_tensor *scale = opt_tensor(L, 2, "scale", 1), *clip = opt_tensor(L, 2, "clip", 0);
    pt_tensor *es = opt_tensor(L, 2, "err_scale", 0);
    int qmin = (int)opt_int(L, 2, "qmin", -127), qmax = (int)opt_int(L, 2, "qmax", 127);
    pt_tensor *q = NULL, *err = NULL;
    PT_LUA_CHECK(L, pt_quant_rows(&q, &err, w, clip, scale, es, qmin, qmax));
    pt_lua_push_tensor(L, q);
    if (err) pt_lua_push_tensor(L, err);
    else lua_pushnil(L);
    return 2;
}

static int l_dequant(lua_State *L) {
    pt_tensor *out = NULL;
    PT_LUA_CHECK(L, pt_quant_dequant(&out, pt_lua_check_tensor(L, 1), pt_lua_check_tensor(L, 2)));
    pt_lua_push_tensor(L, out);
    return 1;
}

static int l_gptq(lua_State *L) {
    pt_tensor *w = pt_lua_check_tensor(L, 1), *h = pt_lua_check_tensor(L, 2), *s = pt_lua_check_tensor(L, 3);
    if (lua_isnoneornil(L, 4)) lua_newtable(L);
    luaL_checktype(L, 4, LUA_TTABLE);
    pt_tensor *q = NULL;
    PT_LUA_CHECK(L, pt_quant_gptq(&q, w, h, s, (int)opt_int(L, 4, "qmin", -31), (int)opt_int(L, 4, "qmax", 31),
                                  opt_num(L, 4, "damp", 0.01), (int64_t)opt_int(L, 4, "block", 128)));
    pt_lua_push_tensor(L, q);
    return 1;
}

static int l_write_atomic(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *bytes = luaL_checklstring(L, 2, &n);
    pt_chunk ch = {bytes, n};
    PT_LUA_CHECK(L, pt_file_write_atomic(path, &ch, 1));
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static const luaL_Reg quant_fns[] = {
    {"rows", l_rows}, {"dequant", l_dequant}, {"gptq", l_gptq}, {"write_atomic", l_write_atomic}, {NULL, NULL}};

static int luaopen_quant(lua_State *L) {
    luaL_newlib(L, quant_fns);
    return 1;
}
PT_LUA_MODULE("proteus._quant", luaopen_quant)
