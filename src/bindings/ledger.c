/* ledger.c (bindings) — the Lua module "proteus._ledger": the score-first ledger (pt_ledger.h).
 * The public wrapper is lua/lib/proteus/data.lua (data.ledger / data.open_val).
 *
 *   local Lg = require "proteus._ledger"
 *   local led = Lg.open(val_tokens, byte_tables, {legal = true, name = "fineweb_val"})
 *   led:score(positions, logits, {temperature = 1, softcap = 0, rescale = 1, nll = false})
 *       positions: Lua table or i64/i32 tensor of target positions (0-based token index t >= 1);
 *       logits: f32 CPU contiguous tensor [n, V], or a string of n*V packed f32 with opts.vocab = V;
 *       or an f32 [n, V] tensor on a GPU (temperature 1): the NLLs are then computed there, by the
 *       softcapped cross-entropy kernel against the ledger's own targets (pt_ledger_targets), and only
 *       the n NLLs come to the host (pt_ledger_score_device_nll; not "external": the ledger's
 *       computation, on the logits' device). That kernel caps in f32 and rounds each NLL to f32 where
 *       the CPU path works in f64, so a BPB from device logits differs from the CPU's in the 7th
 *       significant digit (tests/gpu/test_ledger_device.lua). With a temperature the logits are copied
 *       to the CPU.
 *       returns Σ NLL of the call (and a table of NLLs when opts.nll is true)
 *   led:score_nll(positions, nlls, rescale)   -- NLLs from the caller: counted as external
 *   led:grant(start, stop) --> Tokens tokens[start-1 .. stop-1] once targets [start, stop) are scored
 *   led:report() --> {targets, scored_once, scored_never, scored_multiple, duplicate_scorings, trained,
 *                     trained_before_scored, nll_rescaled, nll_external, token_count, nll_sum,
 *                     byte_sum, loss, bpb, legal, verdict}
 *   led:merge(other), led:tokens(), led:position(t) --> scored, trained, trained_first, #led, led:close()
 *   led:export() --> scored i32 [N], trained u8 [N], trained_first u8 [N], acc f64 [5]; led:import(same)
 *       replaces the state with one merged across ranks (proteus.dist.merge_ledger; pt_ledger.h)
 *
 * Violations raise in legal mode; with legal = false they are counted (verdict "illegal").
 * Tested by tests/lua/test_data.lua.
 */
#include <stdlib.h> /* malloc, free (buffers handed to Tokens) */
#include <string.h> /* memcpy */

#include "../host/pt_autograd.h"
#include "../host/pt_ledger.h"
#include "../kernels/pt_fused.h"
#include "pt_lua_data.h"

#define PT_LEDGER_MT "proteus.Ledger"

typedef struct {
    pt_ledger *l;
} pt_lua_ledger;

static pt_ledger *check_ledger(lua_State *L, int i) {
    pt_lua_ledger *u = luaL_checkudata(L, i, PT_LEDGER_MT);
    if (!u->l)
        luaL_error(L, "Ledger was closed");
    return u->l;
}

static int ledger_release(lua_State *L) {
    pt_lua_ledger *u = luaL_checkudata(L, 1, PT_LEDGER_MT);
    pt_ledger_free(u->l);
    u->l = NULL;
    return 0;
}

static int l_open(lua_State *L) {
    pt_lua_tokens *tok = pt_lua_check_tokens(L, 1);
    pt_byte_tables *bt = pt_lua_check_byte_tables(L, 2);
    int legal = 1;
    const char *name = "the validation stream";
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_getfield(L, 3, "legal") != LUA_TNIL)
            legal = lua_toboolean(L, -1);
        if (lua_getfield(L, 3, "name") != LUA_TNIL)
            name = luaL_checkstring(L, -1);
    }
    pt_lua_ledger *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->l = NULL;
    luaL_setmetatable(L, PT_LEDGER_MT);
    PT_LUA_CHECK(L, pt_ledger_open(&u->l, tok->data, tok->count, bt, legal, name));
    return 1;
}

/* Reads arg i as a list of n numbers: a Lua table, or a CPU contiguous tensor of i64/i32 (ints) or
 * f32/f64 (floats). Exactly one of ints/dbls is filled. The buffer is a userdata pushed on the Lua
 * stack (garbage-collected), so a Lua error anywhere later cannot leak it. */
static void *scratch(lua_State *L, int64_t n, size_t elem) {
    return lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * elem, 0);
}

static void read_list(lua_State *L, int i, const char *what, int64_t **ints, double **dbls, int64_t *n) {
    pt_tensor *t = pt_lua_test_tensor(L, i);
    if (t) {
        if (t->device.type != PT_DEV_CPU || !pt_tensor_is_contiguous(t))
            luaL_error(L, "ledger: %s must be a contiguous CPU tensor", what);
        int64_t k = pt_tensor_numel(t);
        const void *p = pt_tensor_data(t);
        if (ints) {
            if (t->dtype != PT_I64 && t->dtype != PT_I32)
                luaL_error(L, "ledger: %s tensor must be i64 or i32, got %s", what, pt_dtype_name(t->dtype));
            *ints = scratch(L, k, sizeof **ints);
            for (int64_t j = 0; j < k; j++)
                (*ints)[j] = t->dtype == PT_I64 ? ((const int64_t *)p)[j] : ((const int32_t *)p)[j];
        } else {
            if (t->dtype != PT_F32 && t->dtype != PT_F64)
                luaL_error(L, "ledger: %s tensor must be f32 or f64, got %s", what, pt_dtype_name(t->dtype));
            *dbls = scratch(L, k, sizeof **dbls);
            for (int64_t j = 0; j < k; j++)
                (*dbls)[j] = t->dtype == PT_F64 ? ((const double *)p)[j] : ((const float *)p)[j];
        }
        *n = k;
        return;
    }
    if (!lua_istable(L, i))
        luaL_error(L, "ledger: %s must be a Lua table or a tensor, got %s", what, luaL_typename(L, i));
    int64_t k = (int64_t)luaL_len(L, i);
    void *buf = scratch(L, k, 8);
    for (int64_t j = 1; j <= k; j++) {
        int t2 = lua_rawgeti(L, i, j);
        if (ints ? !lua_isinteger(L, -1) : t2 != LUA_TNUMBER)
            luaL_error(L, "ledger: %s[%I] is not %s", what, (lua_Integer)j, ints ? "an integer" : "a number");
        if (ints)
            ((int64_t *)buf)[j - 1] = lua_tointeger(L, -1);
        else
            ((double *)buf)[j - 1] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    if (ints)
        *ints = buf;
    else
        *dbls = buf;
    *n = k;
}

static double opt_number(lua_State *L, int i, const char *key, double def) {
    if (lua_isnoneornil(L, i))
        return def;
    double v = def;
    if (lua_getfield(L, i, key) != LUA_TNIL)
        v = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The device path of ledger:score (see the header): NLLs of logits t [n, V] (f32, on a GPU, V > 0) computed on
 * their device against the ledger's targets; fills nll[n] (host) and commits them. */
static pt_status ledger_score_on_device(pt_ledger *l, const int64_t *pos, int64_t n, pt_tensor *t, double softcap,
                                        double rescale, double *nll) {
    const int64_t V = t->shape[t->ndim - 1];
    pt_tensor *tg = NULL, *tgd = NULL, *nl = NULL, *nh = NULL;
    pt_status st = pt_tensor_empty(&tg, PT_I64, PT_CPU, 1, &n);
    if (!st)
        st = pt_ledger_targets(l, pos, n, V, pt_tensor_data(tg));
    if (!st)
        st = pt_tensor_to(&tgd, tg, PT_I64, t->device, 0);
    if (!st) {
        const int grad = pt_grad_set_enabled(0);
        st = pt_softcap_cross_entropy(&nl, t, tgd, softcap, PT_CE_NONE);
        pt_grad_set_enabled(grad);
    }
    if (!st)
        st = pt_tensor_to(&nh, nl, PT_F64, PT_CPU, 0);
    if (!st) {
        memcpy(nll, pt_tensor_data(nh), (size_t)n * sizeof *nll);
        st = pt_ledger_score_device_nll(l, pos, n, nll, rescale);
    }
    pt_tensor_release(tg);
    pt_tensor_release(tgd);
    pt_tensor_release(nl);
    pt_tensor_release(nh);
    return st;
}

static int ledger_score(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    double temperature = opt_number(L, 4, "temperature", 1.0);
    double softcap = opt_number(L, 4, "softcap", 0.0);
    double rescale = opt_number(L, 4, "rescale", 1.0);
    int want_nll = 0;
    if (!lua_isnoneornil(L, 4)) {
        lua_getfield(L, 4, "nll");
        want_nll = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    /* logits first (no allocation yet): a tensor or a packed string */
    const float *logits = NULL;
    int64_t rows = -1, V = 0;
    pt_tensor *t = pt_lua_test_tensor(L, 3);
    if (t && t->device.type != PT_DEV_CPU && t->dtype == PT_F32 && temperature == 1.0 && t->ndim == 2 &&
        t->shape[1] > 0) {
        int64_t *pos = NULL, n = 0;
        read_list(L, 2, "positions", &pos, NULL, &n);
        if (n != t->shape[0])
            return luaL_error(L, "ledger:score: %I positions but %I rows of logits", (lua_Integer)n,
                              (lua_Integer)t->shape[0]);
        double *nll = scratch(L, n, sizeof *nll);
        PT_LUA_CHECK(L, ledger_score_on_device(l, pos, n, t, softcap, rescale, nll));
        double sum = 0;
        for (int64_t i = 0; i < n; i++)
            sum += nll[i];
        lua_pushnumber(L, sum);
        if (!want_nll)
            return 1;
        lua_createtable(L, (int)n, 0);
        for (int64_t i = 0; i < n; i++) {
            lua_pushnumber(L, nll[i]);
            lua_rawseti(L, -2, i + 1);
        }
        return 2;
    }
    if (t && t->device.type != PT_DEV_CPU && t->dtype == PT_F32) {
        /* a temperature (or an odd shape): the CPU computes, on a copy */
        pt_tensor *c = NULL;
        PT_LUA_CHECK(L, pt_tensor_to(&c, t, PT_F32, PT_CPU, 0));
        pt_lua_push_tensor(L, c);
        lua_replace(L, 3);
        t = c;
    }
    if (t) {
        if (t->dtype != PT_F32 || t->device.type != PT_DEV_CPU || !pt_tensor_is_contiguous(t))
            return luaL_error(L, "ledger:score: logits must be a contiguous f32 CPU tensor (got %s%s%s)",
                              pt_dtype_name(t->dtype), t->device.type != PT_DEV_CPU ? ", not on the CPU" : "",
                              pt_tensor_is_contiguous(t) ? "" : ", not contiguous");
        if (t->ndim != 2 && t->ndim != 1)
            return luaL_error(L, "ledger:score: logits must be [n, V] (got %d dimensions)", t->ndim);
        V = t->shape[t->ndim - 1];
        rows = t->ndim == 2 ? t->shape[0] : 1;
        logits = pt_tensor_data(t);
    } else if (lua_type(L, 3) == LUA_TSTRING) {
        size_t len;
        logits = (const float *)lua_tolstring(L, 3, &len);
        V = (int64_t)opt_number(L, 4, "vocab", 0);
        if (V < 1)
            return luaL_error(L, "ledger:score: packed f32 logits need opts.vocab (V)");
        if (len % (4 * (size_t)V))
            return luaL_error(L, "ledger:score: %d bytes of packed logits are not rows of %d f32 values", (int)len,
                              (int)V);
        rows = (int64_t)(len / (4 * (size_t)V));
    } else {
        return luaL_error(L, "ledger:score: logits must be a f32 tensor [n, V] or a string of packed f32, got %s",
                          luaL_typename(L, 3));
    }
    int64_t *pos = NULL, n = 0;
    read_list(L, 2, "positions", &pos, NULL, &n);
    if (n != rows)
        return luaL_error(L, "ledger:score: %I positions but %I rows of logits", (lua_Integer)n, (lua_Integer)rows);
    double *nll = scratch(L, n, sizeof *nll);
    PT_LUA_CHECK(L, pt_ledger_score(l, pos, n, logits, V, temperature, softcap, rescale, nll));
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += nll[i];
    lua_pushnumber(L, sum);
    if (want_nll) {
        lua_createtable(L, (int)n, 0);
        for (int64_t i = 0; i < n; i++) {
            lua_pushnumber(L, nll[i]);
            lua_rawseti(L, -2, i + 1);
        }
    }
    return want_nll ? 2 : 1;
}

static int ledger_score_nll(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    double rescale = luaL_optnumber(L, 4, 1.0);
    int64_t *pos = NULL, n = 0, m = 0;
    double *nll = NULL;
    read_list(L, 2, "positions", &pos, NULL, &n);
    read_list(L, 3, "nlls", NULL, &nll, &m);
    if (n != m)
        return luaL_error(L, "ledger:score_nll: %I positions but %I NLL values", (lua_Integer)n, (lua_Integer)m);
    PT_LUA_CHECK(L, pt_ledger_score_nll(l, pos, n, nll, rescale));
    return 0;
}

static int ledger_grant(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    int64_t a = luaL_checkinteger(L, 2), b = luaL_checkinteger(L, 3);
    if (a < 1 || b > pt_ledger_ntokens(l) || a > b) /* let the C side word the range error */
        PT_LUA_CHECK(L, pt_ledger_grant(l, a, b, NULL));
    uint16_t *d = malloc((size_t)(b - a + 1) * sizeof *d);
    if (!d)
        return luaL_error(L, "ledger:grant: out of memory");
    pt_status s = pt_ledger_grant(l, a, b, d);
    if (s != PT_OK) {
        free(d);
        return pt_lua_raise(L, s);
    }
    pt_lua_push_tokens(L, d, b > a ? b - a + 1 : 0);
    return 1;
}

static void set_int(lua_State *L, const char *k, int64_t v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static int ledger_report(lua_State *L) {
    pt_ledger_report r;
    pt_ledger_report_get(check_ledger(L, 1), &r);
    lua_createtable(L, 0, 16);
    set_int(L, "targets", r.targets);
    set_int(L, "scored_once", r.scored_once);
    set_int(L, "scored_never", r.scored_never);
    set_int(L, "scored_multiple", r.scored_multiple);
    set_int(L, "duplicate_scorings", r.duplicate_scorings);
    set_int(L, "trained", r.trained);
    set_int(L, "trained_before_scored", r.trained_before_scored);
    set_int(L, "nll_rescaled", r.nll_rescaled);
    set_int(L, "nll_external", r.nll_external);
    set_int(L, "token_count", r.token_count);
    set_num(L, "nll_sum", r.nll_sum);
    set_num(L, "byte_sum", r.byte_sum);
    set_num(L, "loss", r.loss);
    set_num(L, "bpb", r.bpb);
    lua_pushboolean(L, r.legal);
    lua_setfield(L, -2, "legal");
    lua_pushstring(L, r.verdict);
    lua_setfield(L, -2, "verdict");
    lua_pushboolean(L, pt_ledger_is_legal_mode(check_ledger(L, 1)));
    lua_setfield(L, -2, "legal_mode");
    return 1;
}

static int ledger_merge(lua_State *L) {
    PT_LUA_CHECK(L, pt_ledger_merge(check_ledger(L, 1), check_ledger(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int ledger_tokens(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    int64_t n = pt_ledger_ntokens(l);
    uint16_t *d = malloc((size_t)n * sizeof *d);
    if (!d)
        return luaL_error(L, "ledger:tokens: out of memory");
    memcpy(d, pt_ledger_tokens(l), (size_t)n * sizeof *d);
    pt_lua_push_tokens(L, d, n);
    return 1;
}

/* led:export() --> scored (i32 [n]), trained (u8 [n]), trained_first (u8 [n]), acc (f64 [5]) */
static int ledger_export(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    int64_t n = pt_ledger_ntokens(l), five = 5;
    pt_tensor *sc = NULL, *tr = NULL, *tf = NULL, *acc = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&sc, PT_I32, PT_CPU, 1, &n));
    pt_lua_push_tensor(L, sc);
    PT_LUA_CHECK(L, pt_tensor_empty(&tr, PT_U8, PT_CPU, 1, &n));
    pt_lua_push_tensor(L, tr);
    PT_LUA_CHECK(L, pt_tensor_empty(&tf, PT_U8, PT_CPU, 1, &n));
    pt_lua_push_tensor(L, tf);
    PT_LUA_CHECK(L, pt_tensor_empty(&acc, PT_F64, PT_CPU, 1, &five));
    pt_lua_push_tensor(L, acc);
    pt_ledger_export(l, pt_tensor_data(sc), pt_tensor_data(tr), pt_tensor_data(tf), pt_tensor_data(acc));
    return 4;
}

static void *import_arg(lua_State *L, int i, pt_dtype dt, int64_t n, const char *what) {
    pt_tensor *t = pt_lua_check_tensor(L, i);
    if (t->dtype != dt || t->device.type != PT_DEV_CPU || !pt_tensor_is_contiguous(t) || pt_tensor_numel(t) != n)
        luaL_error(L, "ledger:import: %s must be a contiguous CPU %s tensor of %I elements (as ledger:export gives), "
                      "got %s with %I", what, pt_dtype_name(dt), (lua_Integer)n, pt_dtype_name(t->dtype),
                   (lua_Integer)pt_tensor_numel(t));
    return pt_tensor_data(t);
}

/* led:import(scored, trained, trained_first, acc): replaces the state (merged across ranks) */
static int ledger_import(lua_State *L) {
    pt_ledger *l = check_ledger(L, 1);
    int64_t n = pt_ledger_ntokens(l);
    const int32_t *sc = import_arg(L, 2, PT_I32, n, "scored");
    const uint8_t *tr = import_arg(L, 3, PT_U8, n, "trained");
    const uint8_t *tf = import_arg(L, 4, PT_U8, n, "trained_first");
    const double *acc = import_arg(L, 5, PT_F64, 5, "acc");
    PT_LUA_CHECK(L, pt_ledger_import(l, sc, tr, tf, acc));
    lua_settop(L, 1);
    return 1;
}

static int ledger_position(lua_State *L) {
    int sc, tr, tf;
    PT_LUA_CHECK(L, pt_ledger_position(check_ledger(L, 1), luaL_checkinteger(L, 2), &sc, &tr, &tf));
    lua_pushinteger(L, sc);
    lua_pushboolean(L, tr);
    lua_pushboolean(L, tf);
    return 3;
}

static int ledger_len(lua_State *L) {
    lua_pushinteger(L, pt_ledger_ntokens(check_ledger(L, 1)));
    return 1;
}

static const luaL_Reg ledger_methods[] = {{"score", ledger_score},   {"score_nll", ledger_score_nll},
                                          {"grant", ledger_grant},   {"report", ledger_report},
                                          {"merge", ledger_merge},   {"tokens", ledger_tokens},
                                          {"position", ledger_position}, {"close", ledger_release},
                                          {"export", ledger_export}, {"import", ledger_import},
                                          {NULL, NULL}};

static int luaopen_ledger(lua_State *L) {
    pt_lua_data_types(L);
    if (luaL_newmetatable(L, PT_LEDGER_MT)) {
        luaL_newlib(L, ledger_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ledger_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, ledger_release);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, ledger_len);
        lua_setfield(L, -2, "__len");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"open", l_open}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}

PT_LUA_MODULE("proteus._ledger", luaopen_ledger)
