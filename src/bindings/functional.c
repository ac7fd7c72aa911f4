/* functional.c (bindings) — module "proteus._functional": the fused differentiable ops of pt_fused.h
 * for Lua. The public face is lua/lib/proteus/functional.lua (`local F = require "proteus.functional"`).
 *
 *   F.rms_norm(x [, eps [, scale]])                      eps default FLT_EPSILON, scale (λ) default 1
 *   F.rotary(x [, {dims=, base=10000, train_len=1024, offset=0}])   dims default D; train_len 0/false = no NTK
 *   F.attention(q, k, v [, {scale=}])                    scale default 1/√D
 *   F.xsa(y, v)    F.relu2(x)    F.leaky_relu2(x [, slope=0.5])    F.star_relu(x, scale, bias)
 *   F.softcap_cross_entropy(logits, targets [, {softcap=30, reduction="mean"|"none"}])  softcap 0/false = none
 *   F.bigram_hash(tokens [, buckets=2048])    F.smear_gate(x, gate)    F.lora(x, A, B)
 *   F.mix_rms_norm(x, x0, wx, w0 [, eps [, scale [, x0_scale]]])  -> y, h   (pt_fused_norm.h; wx may be nil)
 *                                                        y = x⊙wx + (x0⊙w0)·x0_scale, h = rms_norm(y, eps)·scale
 *   F.rms_norm_rotary(x [, rope [, gain [, eps]]])       rms_norm over D, F.rotary(·, rope), ×gain[h] (gain [H]
 *                                                        or nil); rope: F.rotary's option table
 *   F.linear_softcap_cross_entropy(x, w, targets [, {softcap=30, chunk=, reduction="mean"|"none"}])
 *                                                        x·wᵀ + softcapped CE in row chunks (pt_head_ce.h);
 *                                                        chunk default: automatic (≤ 64 MiB of logits)
 *   F.linear_relu2(x, w)    F.linear_leaky_relu2(x, w [, slope=0.5])    relu2 / leaky_relu2 of x·wᵀ, one node
 *                                                        (pt_linear_act.h; w [out, in]; the MLP's up projection)
 *
 * Option tables are checked: an unknown key is an error that names it. Token ids and targets are
 * 0-based ids (values, not positions). Tests: tests/lua/test_functional.lua.
 */
#include <string.h>

#include "../kernels/pt_fused.h"
#include "../kernels/pt_fused_norm.h"
#include "../kernels/pt_head_ce.h"
#include "../kernels/pt_linear_act.h"
#include "pt_lua.h"

/* Raises an error if the options table at idx has a key not in `allowed` (NULL-terminated). */
static void fl_check_keys(lua_State *L, int idx, const char *fn, const char *const *allowed) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && allowed[i]; i++)
            if (!strcmp(k, allowed[i])) ok = 1;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; allowed[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, allowed[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "F.%s: unknown option '%s' (known: %s)", fn, k ? k : luaL_typename(L, -2),
                       lua_tostring(L, -1));
        }
    }
}

/* numeric option: nil -> def; false -> off_value */
static double fl_opt_number(lua_State *L, int idx, const char *key, double def, double off_value) {
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, key);
    double v = def;
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) v = off_value;
    else if (!lua_isnil(L, -1)) {
        int isnum;
        v = lua_tonumberx(L, -1, &isnum);
        if (!isnum) luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static int64_t fl_opt_integer(lua_State *L, int idx, const char *key, int64_t def, int64_t off_value) {
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, key);
    int64_t v = def;
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) v = off_value;
    else if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1)) luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
        v = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* out is read after st was computed (a pointer to it: argument evaluation order is unspecified) */
static int fl_push(lua_State *L, pt_status st, pt_tensor **out) {
    PT_LUA_CHECK(L, st);
    pt_lua_push_tensor(L, *out);
    return 1;
}

static int l_rms_norm(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *out = NULL;
    double eps = luaL_optnumber(L, 2, PT_RMS_NORM_EPS), scale = luaL_optnumber(L, 3, 1.0);
    return fl_push(L, pt_rms_norm(&out, x, eps, scale), &out);
}

/* the rope option table at index i (F.rotary and F.rms_norm_rotary): {dims, base, train_len, offset} */
typedef struct {
    int64_t dims, train_len, offset;
    double base;
} fl_rope;
static fl_rope fl_rope_opts(lua_State *L, int i, const char *fn) {
    static const char *const keys[] = {"dims", "base", "train_len", "offset", NULL};
    fl_check_keys(L, i, fn, keys);
    fl_rope r; /* read in this order, so the first bad option is the one named */
    r.dims = fl_opt_integer(L, i, "dims", 0, 0);
    r.base = fl_opt_number(L, i, "base", 10000.0, 10000.0);
    r.train_len = fl_opt_integer(L, i, "train_len", 1024, 0);
    r.offset = fl_opt_integer(L, i, "offset", 0, 0);
    return r;
}

static int l_rotary(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *out = NULL;
    fl_rope r = fl_rope_opts(L, 2, "rotary");
    return fl_push(L, pt_rotary(&out, x, r.dims, r.base, r.train_len, r.offset), &out);
}

/* F.mix_rms_norm(x, x0, wx, w0 [, eps [, scale [, x0_scale]]]) -> y, h */
static int l_mix_rms_norm(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *x0 = pt_lua_check_tensor(L, 2);
    pt_tensor *wx = lua_isnoneornil(L, 3) ? NULL : pt_lua_check_tensor(L, 3), *w0 = pt_lua_check_tensor(L, 4);
    double eps = luaL_optnumber(L, 5, PT_RMS_NORM_EPS), scale = luaL_optnumber(L, 6, 1.0);
    double x0_scale = luaL_optnumber(L, 7, 1.0);
    pt_tensor *y = NULL, *h = NULL;
    PT_LUA_CHECK(L, pt_mix_rms_norm(&y, &h, x, x0, wx, w0, eps, scale, x0_scale));
    pt_lua_push_tensor(L, y);
    pt_lua_push_tensor(L, h);
    return 2;
}

/* F.rms_norm_rotary(x [, rope [, gain [, eps]]]): rope is F.rotary's option table (same defaults) */
static int l_rms_norm_rotary(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *out = NULL;
    fl_rope r = fl_rope_opts(L, 2, "rms_norm_rotary");
    pt_tensor *gain = lua_isnoneornil(L, 3) ? NULL : pt_lua_check_tensor(L, 3);
    double eps = luaL_optnumber(L, 4, PT_RMS_NORM_EPS);
    return fl_push(L, pt_rms_norm_rotary(&out, x, gain, eps, r.dims, r.base, r.train_len, r.offset), &out);
}

static int l_attention(lua_State *L) {
    pt_tensor *q = pt_lua_check_tensor(L, 1), *k = pt_lua_check_tensor(L, 2), *v = pt_lua_check_tensor(L, 3);
    static const char *const keys[] = {"scale", NULL};
    fl_check_keys(L, 4, "attention", keys);
    double scale = fl_opt_number(L, 4, "scale", 0, 0);
    if (!lua_isnoneornil(L, 4) && scale <= 0) {
        lua_getfield(L, 4, "scale");
        int given = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (given) return luaL_error(L, "F.attention: scale must be > 0, got %g", scale);
    }
    pt_tensor *out = NULL;
    return fl_push(L, pt_attention(&out, q, k, v, scale), &out);
}

static int l_xsa(lua_State *L) {
    pt_tensor *y = pt_lua_check_tensor(L, 1), *v = pt_lua_check_tensor(L, 2), *out = NULL;
    return fl_push(L, pt_xsa(&out, y, v), &out);
}

static int l_relu2(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *out = NULL;
    return fl_push(L, pt_relu2(&out, x), &out);
}

static int l_leaky_relu2(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *out = NULL;
    return fl_push(L, pt_leaky_relu2(&out, x, luaL_optnumber(L, 2, 0.5)), &out);
}

static int l_star_relu(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *s = pt_lua_check_tensor(L, 2), *b = pt_lua_check_tensor(L, 3);
    pt_tensor *out = NULL;
    return fl_push(L, pt_star_relu(&out, x, s, b), &out);
}

/* option "reduction" of the table at idx: "mean" (default) or "none" */
static pt_ce_reduction fl_opt_reduction(lua_State *L, int idx, const char *fn) {
    pt_ce_reduction red = PT_CE_MEAN;
    if (lua_isnoneornil(L, idx)) return red;
    lua_getfield(L, idx, "reduction");
    if (!lua_isnil(L, -1)) {
        const char *r = lua_tostring(L, -1);
        if (r && !strcmp(r, "mean")) red = PT_CE_MEAN;
        else if (r && !strcmp(r, "none")) red = PT_CE_NONE;
        else
            luaL_error(L, "F.%s: reduction must be \"mean\" or \"none\", got %s", fn, r ? r : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return red;
}

static int l_softcap_cross_entropy(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *t = pt_lua_check_tensor(L, 2), *out = NULL;
    static const char *const keys[] = {"softcap", "reduction", NULL};
    fl_check_keys(L, 3, "softcap_cross_entropy", keys);
    double cap = fl_opt_number(L, 3, "softcap", 30.0, 0.0);
    pt_ce_reduction red = fl_opt_reduction(L, 3, "softcap_cross_entropy");
    return fl_push(L, pt_softcap_cross_entropy(&out, x, t, cap, red), &out);
}

static int l_linear_softcap_cross_entropy(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *w = pt_lua_check_tensor(L, 2), *t = pt_lua_check_tensor(L, 3);
    pt_tensor *out = NULL;
    static const char *const keys[] = {"softcap", "chunk", "reduction", NULL};
    fl_check_keys(L, 4, "linear_softcap_cross_entropy", keys);
    double cap = fl_opt_number(L, 4, "softcap", 30.0, 0.0);
    int64_t chunk = fl_opt_integer(L, 4, "chunk", 0, -1);
    if (!lua_isnoneornil(L, 4)) {
        lua_getfield(L, 4, "chunk");
        int given = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (given && chunk < 1)
            return luaL_error(L, "F.linear_softcap_cross_entropy: chunk must be an integer >= 1 (rows per chunk; "
                                 "leave it out for the automatic size), got %I", (lua_Integer)chunk);
    }
    pt_ce_reduction red = fl_opt_reduction(L, 4, "linear_softcap_cross_entropy");
    return fl_push(L, pt_linear_softcap_cross_entropy(&out, x, w, t, cap, chunk, red), &out);
}

static int l_bigram_hash(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1), *out = NULL;
    return fl_push(L, pt_bigram_hash(&out, t, luaL_optinteger(L, 2, 2048)), &out);
}

static int l_smear_gate(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *g = pt_lua_check_tensor(L, 2), *out = NULL;
    return fl_push(L, pt_smear_gate(&out, x, g), &out);
}

static int l_lora(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *a = pt_lua_check_tensor(L, 2), *b = pt_lua_check_tensor(L, 3);
    pt_tensor *out = NULL;
    return fl_push(L, pt_lora(&out, x, a, b), &out);
}

static int l_linear_relu2(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *w = pt_lua_check_tensor(L, 2), *out = NULL;
    return fl_push(L, pt_linear_act(&out, x, w, PT_LINEAR_ACT_RELU2, 0.0), &out);
}

static int l_linear_leaky_relu2(lua_State *L) {
    pt_tensor *x = pt_lua_check_tensor(L, 1), *w = pt_lua_check_tensor(L, 2), *out = NULL;
    return fl_push(L, pt_linear_act(&out, x, w, PT_LINEAR_ACT_LEAKY_RELU2, luaL_optnumber(L, 3, 0.5)), &out);
}

static int l_rotary_base(lua_State *L) {
    lua_pushnumber(L, pt_rotary_effective_base(luaL_checknumber(L, 1), luaL_checkinteger(L, 2),
                                               luaL_checkinteger(L, 3), luaL_optinteger(L, 4, 1024)));
    return 1;
}

static const luaL_Reg fl_fns[] = {
    {"rms_norm", l_rms_norm},       {"rotary", l_rotary},           {"attention", l_attention},
    {"xsa", l_xsa},                 {"relu2", l_relu2},             {"leaky_relu2", l_leaky_relu2},
    {"star_relu", l_star_relu},     {"softcap_cross_entropy", l_softcap_cross_entropy},
    {"bigram_hash", l_bigram_hash}, {"smear_gate", l_smear_gate},   {"lora", l_lora},
    {"rotary_base", l_rotary_base}, {"linear_softcap_cross_entropy", l_linear_softcap_cross_entropy},
    {"linear_relu2", l_linear_relu2}, {"linear_leaky_relu2", l_linear_leaky_relu2},
    {"mix_rms_norm", l_mix_rms_norm}, {"rms_norm_rotary", l_rms_norm_rotary},
    {NULL, NULL}};

static int luaopen_pt_functional(lua_State *L) {
    luaL_newlib(L, fl_fns);
    lua_pushnumber(L, PT_RMS_NORM_EPS);
    lua_setfield(L, -2, "RMS_EPS");
    return 1;
}
PT_LUA_MODULE("proteus._functional", luaopen_pt_functional)
