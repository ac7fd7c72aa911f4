/* bindings/optim.c — Lua module "proteus._optim": the in-place optimizer update kernels of
 * src/kernels/pt_optim.h. The public API (optimizer objects, state dicts, groups) is
 * lua/lib/proteus/optim.lua; this module only checks arguments and calls the C fronts.
 *
 *   local O = require "proteus._optim"
 *   O.adamw_step(p, g, m, v, {step = 1, lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8,
 *                             weight_decay = 0, maximize = false})
 *   O.sgd_step(p, g, buf_or_nil, {first = true, lr =, momentum = 0, dampening = 0,
 *                                 weight_decay = 0, nesterov = false, maximize = false})
 *   X = O.newton_schulz(G, {steps = 5, coeffs = "ns5" | "polar_express" | {{a,b,c},...},
 *                           dtype = "bf16" | "f32", row_norm = false})
 *   O.muon_step(p, g, buf, {lr =, momentum =, nesterov = true, weight_decay = 0, factor = nil (auto),
 *                           steps = 5, coeffs = "ns5", ns_dtype = "bf16", row_norm = false,
 *                           round = "scaled" | "unit" | "none"})
 *   norm = O.clip_grad_norm({g1, g2, ...}, max_norm)        -- max_norm <= 0: only measures
 *   O.ema_update(ema, w, decay);  O.swa_add(sum, w);  O.swa_average(dst, sum, count)
 *   O.ns5, O.polar_express                                  -- the coefficient tables
 *
 * Multi-tensor ("foreach") path: step scalars are written on the host into row i of a contiguous f64
 * cpu tensor, copied (by the caller) to an f64 tensor on the params' device, and read there by the
 * kernels at run time (what a CUDA graph replay needs):
 *   O.adamw_scalars(rows, i, {step =, lr =, beta1 =, beta2 =, eps =, weight_decay =, maximize =})
 *   O.muon_scalars(rows, i, {lr =, momentum =, weight_decay =, factor = nil, rows =, cols =})
 *   O.ema_scalars(rows, i, decay)
 *   O.adamw_multi(params, grads, exp_avgs, exp_avg_sqs, scal)
 *   O.muon_multi(params, grads, bufs, scal, {nesterov =, steps =, coeffs =, ns_dtype =, row_norm =,
 *                                           round =, batched = true})
 *   O.ema_multi(shadows, weights, scal)
 *   O.clip_grad_norm_dev(grads, max_norm, norm)   -- norm: f64 tensor of one element on the device
 * scal holds one row (shared) or a row per tensor (pt_optim.h has the row layouts).
 *
 * Updates bypass autograd (they are the optimizer's own in-place writes). Test:
 * build/proteus tests/run.lua tests/lua/test_optim.lua
 */
#include <math.h>
#include <string.h>

#include "pt_lua.h"
#include "pt_optim.h"

/* ---- option-table readers ---- */
static double opt_num(lua_State *L, int t, const char *k, double def, int required) {
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (required) luaL_error(L, "option '%s' is required (a number)", k);
        return def;
    }
    if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}
static int opt_bool(lua_State *L, int t, const char *k, int def) {
    lua_getfield(L, t, k);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}
static const char *opt_str(lua_State *L, int t, const char *k, const char *def) {
    lua_getfield(L, t, k);
    const char *v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
        v = lua_tostring(L, -1); /* the option table keeps the string alive */
    }
    lua_pop(L, 1);
    return v;
}

/* coefficient tuples from option "coeffs" into buf (max 16); returns the count */
#define PT_MAX_COEFFS 16
static int opt_coeffs(lua_State *L, int t, double (*buf)[3], int *default_steps) {
    lua_getfield(L, t, "coeffs");
    int n = 0;
    *default_steps = 5;
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "ns5") == 0)) {
        memcpy(buf[0], pt_ns5_coeffs[0], sizeof(double) * 3);
        n = 1;
    } else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "polar_express") == 0) {
        memcpy(buf, pt_polar_express_coeffs, sizeof pt_polar_express_coeffs);
        n = 5;
        *default_steps = PT_POLAR_EXPRESS_STEPS;
    } else if (lua_istable(L, -1)) {
        n = (int)luaL_len(L, -1);
        if (n < 1 || n > PT_MAX_COEFFS) luaL_error(L, "option 'coeffs': %d tuples (expected 1..%d)", n, PT_MAX_COEFFS);
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            if (!lua_istable(L, -1) || luaL_len(L, -1) != 3)
                luaL_error(L, "option 'coeffs': entry %d is not a tuple {a, b, c}", i + 1);
            for (int j = 0; j < 3; j++) {
                lua_geti(L, -1, j + 1);
                if (!lua_isnumber(L, -1)) luaL_error(L, "option 'coeffs': entry %d value %d is not a number", i + 1, j + 1);
                buf[i][j] = lua_tonumber(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        *default_steps = n == 1 ? 5 : n;
    } else {
        luaL_error(L, "option 'coeffs' must be \"ns5\", \"polar_express\" or a list of {a, b, c}, got %s",
                   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return n;
}

static int opt_ns_flags(lua_State *L, int t, const char *dtype_key) {
    const char *dt = opt_str(L, t, dtype_key, "bf16");
    int flags = 0;
    if (strcmp(dt, "bf16") == 0) flags |= PT_NS_BF16;
    else if (strcmp(dt, "f32") != 0) luaL_error(L, "option '%s' must be \"bf16\" or \"f32\", got \"%s\"", dtype_key, dt);
    if (opt_bool(L, t, "row_norm", 0)) flags |= PT_NS_ROW_NORM;
    return flags;
}

static int check_steps(lua_State *L, int t, int def) {
    double s = opt_num(L, t, "steps", def, 0);
    if (s != floor(s) || s < 0 || s > 100) luaL_error(L, "option 'steps' must be an integer in [0, 100], got %g", s);
    return (int)s;
}

/* ---- functions ---- */
static int l_adamw_step(lua_State *L) {
    pt_tensor *p = pt_lua_check_tensor(L, 1), *g = pt_lua_check_tensor(L, 2);
    pt_tensor *m = pt_lua_check_tensor(L, 3), *v = pt_lua_check_tensor(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    double step = opt_num(L, 5, "step", 0, 1);
    if (step != floor(step) || step < 1) luaL_error(L, "adamw_step: option 'step' must be an integer >= 1, got %g", step);
    PT_LUA_CHECK(L, pt_adamw_step(p, g, m, v, (int64_t)step, opt_num(L, 5, "lr", 0, 1), opt_num(L, 5, "beta1", 0.9, 0),
                                  opt_num(L, 5, "beta2", 0.999, 0), opt_num(L, 5, "eps", 1e-8, 0),
                                  opt_num(L, 5, "weight_decay", 0, 0), opt_bool(L, 5, "maximize", 0)));
    return 0;
}

static int l_sgd_step(lua_State *L) {
    pt_tensor *p = pt_lua_check_tensor(L, 1), *g = pt_lua_check_tensor(L, 2);
    pt_tensor *buf = lua_isnil(L, 3) ? NULL : pt_lua_check_tensor(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    PT_LUA_CHECK(L, pt_sgd_step(p, g, buf, opt_bool(L, 4, "first", 0), opt_num(L, 4, "lr", 0, 1),
                                opt_num(L, 4, "momentum", 0, 0), opt_num(L, 4, "dampening", 0, 0),
                                opt_num(L, 4, "weight_decay", 0, 0), opt_bool(L, 4, "nesterov", 0),
                                opt_bool(L, 4, "maximize", 0)));
    return 0;
}

static int l_newton_schulz(lua_State *L) {
    pt_tensor *G = pt_lua_check_tensor(L, 1), *out = NULL;
    if (lua_isnoneornil(L, 2)) lua_newtable(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    double coeffs[PT_MAX_COEFFS][3];
    int def_steps;
    int n = opt_coeffs(L, 2, coeffs, &def_steps);
    int steps = check_steps(L, 2, def_steps);
    PT_LUA_CHECK(L, pt_newton_schulz(&out, G, steps, (const double(*)[3])coeffs, n, opt_ns_flags(L, 2, "dtype")));
    pt_lua_push_tensor(L, out);
    return 1;
}

static int l_muon_step(lua_State *L) {
    pt_tensor *p = pt_lua_check_tensor(L, 1), *g = pt_lua_check_tensor(L, 2), *buf = pt_lua_check_tensor(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    double coeffs[PT_MAX_COEFFS][3];
    pt_muon_opts o;
    memset(&o, 0, sizeof o);
    int def_steps;
    o.ncoeffs = opt_coeffs(L, 4, coeffs, &def_steps);
    o.coeffs = (const double(*)[3])coeffs;
    o.ns_steps = check_steps(L, 4, def_steps);
    o.ns_flags = opt_ns_flags(L, 4, "ns_dtype");
    o.lr = opt_num(L, 4, "lr", 0, 1);
    o.momentum = opt_num(L, 4, "momentum", 0, 1);
    o.nesterov = opt_bool(L, 4, "nesterov", 1);
    o.wd = opt_num(L, 4, "weight_decay", 0, 0);
    o.factor = opt_num(L, 4, "factor", 0, 0);
    const char *r = opt_str(L, 4, "round", "scaled");
    if (strcmp(r, "none") == 0) o.round = PT_MUON_ROUND_NONE;
    else if (strcmp(r, "scaled") == 0) o.round = PT_MUON_ROUND_SCALED;
    else if (strcmp(r, "unit") == 0) o.round = PT_MUON_ROUND_UNIT;
    else return luaL_error(L, "muon_step: option 'round' must be \"none\", \"scaled\" or \"unit\", got \"%s\"", r);
    PT_LUA_CHECK(L, pt_muon_step(p, g, buf, &o));
    return 0;
}

static int l_clip_grad_norm(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    double max_norm = luaL_checknumber(L, 2);
    int n = (int)luaL_len(L, 1);
    pt_tensor **gs = lua_newuserdatauv(L, sizeof(pt_tensor *) * (size_t)(n ? n : 1), 0); /* freed by the GC */
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        gs[i] = pt_lua_test_tensor(L, -1);
        if (!gs[i]) return luaL_error(L, "clip_grad_norm: entry %d is a %s, expected a tensor", i + 1, luaL_typename(L, -1));
        lua_pop(L, 1); /* the table keeps the tensor alive */
    }
    double norm = 0;
    PT_LUA_CHECK(L, pt_clip_grad_norm(n, gs, max_norm, &norm));
    lua_pushnumber(L, norm);
    return 1;
}

static int l_ema_update(lua_State *L) {
    PT_LUA_CHECK(L, pt_ema_update(pt_lua_check_tensor(L, 1), pt_lua_check_tensor(L, 2), luaL_checknumber(L, 3)));
    return 0;
}
static int l_swa_add(lua_State *L) {
    PT_LUA_CHECK(L, pt_swa_add(pt_lua_check_tensor(L, 1), pt_lua_check_tensor(L, 2)));
    return 0;
}
static int l_swa_average(lua_State *L) {
    PT_LUA_CHECK(L, pt_swa_average(pt_lua_check_tensor(L, 1), pt_lua_check_tensor(L, 2), luaL_checkinteger(L, 3)));
    return 0;
}

/* ---- multi-tensor ("foreach") functions ---- */

/* the tensors of the list at stack index idx (what = "params", ...); the array lives in a userdata
 * left on the stack (freed by the GC), the list table keeps the tensors alive */
static pt_tensor **check_list(lua_State *L, int idx, const char *fn, const char *what, int *n) {
    if (!lua_istable(L, idx)) luaL_error(L, "%s: %s must be a list of tensors, got %s", fn, what, luaL_typename(L, idx));
    int len = (int)luaL_len(L, idx);
    pt_tensor **ts = lua_newuserdatauv(L, sizeof(pt_tensor *) * (size_t)(len ? len : 1), 0);
    for (int i = 0; i < len; i++) {
        lua_geti(L, idx, i + 1);
        ts[i] = pt_lua_test_tensor(L, -1);
        if (!ts[i]) luaL_error(L, "%s: %s entry %d is a %s, expected a tensor", fn, what, i + 1, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    *n = len;
    return ts;
}

static pt_tensor **check_list_n(lua_State *L, int idx, const char *fn, const char *what, int n) {
    int m = 0;
    pt_tensor **ts = check_list(L, idx, fn, what, &m);
    if (m != n) luaL_error(L, "%s: %d %s for %d params; the lists must have the same length", fn, m, what, n);
    return ts;
}

/* row i (1-based) of K doubles in dst, a contiguous f64 CPU tensor */
static double *scalar_row(lua_State *L, const char *fn, pt_tensor *dst, lua_Integer i, int K) {
    if (dst->dtype != PT_F64 || dst->device.type != PT_DEV_CPU || !pt_tensor_is_contiguous(dst))
        luaL_error(L, "%s: the rows go to a contiguous f64 cpu tensor, got %s on %s", fn, pt_dtype_name(dst->dtype),
                   dst->device.type == PT_DEV_CPU ? "cpu" : "a device");
    if (i < 1 || i * K > pt_tensor_numel(dst))
        luaL_error(L, "%s: row %I does not fit a tensor of %I values (%d per row)", fn, i,
                   (lua_Integer)pt_tensor_numel(dst), K);
    return (double *)pt_tensor_data(dst) + (i - 1) * K;
}

static int l_adamw_scalars(lua_State *L) {
    pt_tensor *dst = pt_lua_check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    double *row = scalar_row(L, "adamw_scalars", dst, i, PT_ADAMW_NSCAL);
    double step = opt_num(L, 3, "step", 0, 1);
    if (step != floor(step) || step < 1)
        luaL_error(L, "adamw_scalars: option 'step' must be an integer >= 1, got %g", step);
    PT_LUA_CHECK(L, pt_adamw_scalars(row, (int64_t)step, opt_num(L, 3, "lr", 0, 1), opt_num(L, 3, "beta1", 0.9, 0),
                                     opt_num(L, 3, "beta2", 0.999, 0), opt_num(L, 3, "eps", 1e-8, 0),
                                     opt_num(L, 3, "weight_decay", 0, 0), opt_bool(L, 3, "maximize", 0)));
    return 0;
}

static int l_muon_scalars(lua_State *L) {
    pt_tensor *dst = pt_lua_check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    double *row = scalar_row(L, "muon_scalars", dst, i, PT_MUON_NSCAL);
    double rows = opt_num(L, 3, "rows", 0, 1), cols = opt_num(L, 3, "cols", 0, 1);
    PT_LUA_CHECK(L, pt_muon_scalars(row, opt_num(L, 3, "lr", 0, 1), opt_num(L, 3, "momentum", 0, 1),
                                    opt_num(L, 3, "weight_decay", 0, 0), opt_num(L, 3, "factor", 0, 0), (int64_t)rows,
                                    (int64_t)cols));
    return 0;
}

static int l_ema_scalars(lua_State *L) {
    pt_tensor *dst = pt_lua_check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    double *row = scalar_row(L, "ema_scalars", dst, i, PT_EMA_NSCAL);
    PT_LUA_CHECK(L, pt_ema_scalars(row, luaL_checknumber(L, 3)));
    return 0;
}

static int l_adamw_multi(lua_State *L) {
    int n = 0;
    pt_tensor **p = check_list(L, 1, "adamw_multi", "params", &n);
    pt_tensor **g = check_list_n(L, 2, "adamw_multi", "grads", n);
    pt_tensor **m = check_list_n(L, 3, "adamw_multi", "exp_avgs", n);
    pt_tensor **v = check_list_n(L, 4, "adamw_multi", "exp_avg_sqs", n);
    PT_LUA_CHECK(L, pt_adamw_multi(n, p, g, m, v, pt_lua_check_tensor(L, 5)));
    return 0;
}

static int l_muon_multi(lua_State *L) {
    int n = 0;
    pt_tensor **p = check_list(L, 1, "muon_multi", "params", &n);
    pt_tensor **g = check_list_n(L, 2, "muon_multi", "grads", n);
    pt_tensor **b = check_list_n(L, 3, "muon_multi", "momentum_buffers", n);
    pt_tensor *scal = pt_lua_check_tensor(L, 4);
    if (lua_isnoneornil(L, 5)) lua_newtable(L);
    luaL_checktype(L, 5, LUA_TTABLE);
    double coeffs[PT_MAX_COEFFS][3];
    pt_muon_opts o;
    memset(&o, 0, sizeof o);
    int def_steps;
    o.ncoeffs = opt_coeffs(L, 5, coeffs, &def_steps);
    o.coeffs = (const double(*)[3])coeffs;
    o.ns_steps = check_steps(L, 5, def_steps);
    o.ns_flags = opt_ns_flags(L, 5, "ns_dtype");
    o.nesterov = opt_bool(L, 5, "nesterov", 1);
    const char *r = opt_str(L, 5, "round", "scaled");
    if (strcmp(r, "none") == 0) o.round = PT_MUON_ROUND_NONE;
    else if (strcmp(r, "scaled") == 0) o.round = PT_MUON_ROUND_SCALED;
    else if (strcmp(r, "unit") == 0) o.round = PT_MUON_ROUND_UNIT;
    else return luaL_error(L, "muon_multi: option 'round' must be \"none\", \"scaled\" or \"unit\", got \"%s\"", r);
    PT_LUA_CHECK(L, pt_muon_multi(n, p, g, b, scal, &o, opt_bool(L, 5, "batched", 1)));
    return 0;
}

static int l_ema_multi(lua_State *L) {
    int n = 0;
    pt_tensor **e = check_list(L, 1, "ema_multi", "shadows", &n);
    pt_tensor **w = check_list_n(L, 2, "ema_multi", "weights", n);
    PT_LUA_CHECK(L, pt_ema_multi(n, e, w, pt_lua_check_tensor(L, 3)));
    return 0;
}

static int l_clip_grad_norm_dev(lua_State *L) {
    int n = 0;
    pt_tensor **g = check_list(L, 1, "clip_grad_norm_dev", "grads", &n);
    double max_norm = luaL_checknumber(L, 2);
    PT_LUA_CHECK(L, pt_clip_grad_norm_dev(n, g, max_norm, pt_lua_check_tensor(L, 3)));
    return 0;
}

static void push_coeffs(lua_State *L, const double (*c)[3], int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 3, 0);
        for (int j = 0; j < 3; j++) {
            lua_pushnumber(L, c[i][j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
}

static const luaL_Reg optim_fns[] = {
    {"adamw_step", l_adamw_step}, {"sgd_step", l_sgd_step},         {"newton_schulz", l_newton_schulz},
    {"muon_step", l_muon_step},   {"clip_grad_norm", l_clip_grad_norm}, {"ema_update", l_ema_update},
    {"swa_add", l_swa_add},       {"swa_average", l_swa_average},   {"adamw_scalars", l_adamw_scalars},
    {"muon_scalars", l_muon_scalars}, {"ema_scalars", l_ema_scalars}, {"adamw_multi", l_adamw_multi},
    {"muon_multi", l_muon_multi}, {"ema_multi", l_ema_multi}, {"clip_grad_norm_dev", l_clip_grad_norm_dev},
    {NULL, NULL}};

static int luaopen_optim(lua_State *L) {
    luaL_newlib(L, optim_fns);
    push_coeffs(L, pt_ns5_coeffs, 1);
    lua_setfield(L, -2, "ns5");
    push_coeffs(L, pt_polar_express_coeffs, 5);
    lua_setfield(L, -2, "polar_express");
    return 1;
}
PT_LUA_MODULE("proteus._optim", luaopen_optim)
