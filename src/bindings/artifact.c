/* artifact.c — Lua binding "proteus._artifact" for the PTZ1 artifact container (format: the top of
 * src/host/artifact.c, docs/artifact.md).
 *
 *   local A = require "proteus._artifact"
 *   local bytes = A.pack(entries, meta, "zstd", 22 [, shuffle])
 *   local entries, meta = A.unpack(bytes)
 *   A.write(path, entries, meta, codec, level [, shuffle]);  local entries, meta = A.read(path)
 *   local sizes = A.sizes(bytes)      -- size breakdown without building the entries
 *
 * entries: a list of
 *   {name = "blocks.0.attn.c_q.weight", scheme = "int6_per_row", dtype = "i8", shape = {512, 512},
 *    orig_dtype = "f32", data = <bytes>, scale_dtype = "f16", scales = <bytes>, packed6 = false}
 * meta: {recipe = "v9", config = <table or JSON text>, extra = <table or JSON text>,
 *        tokenizer_sha256 = "<64 hex>"}; unpack adds version, codec, level, shuffle, config_json,
 *        extra_json and sizes = {file, header, stored, payload, json, data, scales,
 *        by_scheme = {scheme = bytes}}.
 * Test: tests/lua/test_artifact.lua.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../host/pt_artifact.h"
#include "../host/pt_fileio.h"
#include "pt_lua.h"
#include "pt_lua_box.h"

/* ---- Lua value <-> JSON (for config/extra) ---- */

/* Encodes the value at idx; returns NULL and writes err on failure (no Lua errors raised except
 * out-of-memory from the Lua API itself). */
static cJSON *l_to_json(lua_State *L, int idx, int depth, char *err, size_t errn) {
    idx = lua_absindex(L, idx);
    if (depth > 64) {
        snprintf(err, errn, "config nests deeper than 64 levels");
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: return cJSON_CreateNumber(lua_tonumber(L, idx));
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TTABLE: break;
    default: snprintf(err, errn, "config holds a %s, which JSON cannot store", luaL_typename(L, idx)); return NULL;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    int count = 0, is_array = n > 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > n)
            is_array = 0;
        lua_pop(L, 1);
    }
    if (count != n)
        is_array = 0;
    cJSON *out = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!out) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    if (is_array) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *v = l_to_json(L, -1, depth + 1, err, errn);
            lua_pop(L, 1);
            if (!v) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, v);
        }
        return out;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errn, "config keys must be strings (found a %s key)", luaL_typename(L, -2));
            lua_pop(L, 2);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON *v = l_to_json(L, -1, depth + 1, err, errn);
        if (!v) {
            lua_pop(L, 2);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddItemToObject(out, lua_tostring(L, -2), v);
        lua_pop(L, 1);
    }
    return out;
}

static void l_push_json(lua_State *L, const cJSON *j) {
    luaL_checkstack(L, 4, "config too deep");
    if (cJSON_IsObject(j)) {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) {
            l_push_json(L, c);
            lua_setfield(L, -2, c->string ? c->string : "");
        }
    } else if (cJSON_IsArray(j)) {
        lua_newtable(L);
        lua_Integer i = 1;
        for (const cJSON *c = j->child; c; c = c->next) {
            l_push_json(L, c);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(lua_Integer)d && d >= -9007199254740992.0 && d <= 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else {
        lua_pushnil(L);
    }
}

static void l_cjson_free(void *p) { cJSON_Delete(p); }

/* Pushes a JSON object text as a Lua table (a box holds the tree while it is converted). */
static void l_push_json_text(lua_State *L, const char *text) {
    void **slot = pt_lua_box_new(L, l_cjson_free);
    int box = lua_gettop(L);
    *slot = cJSON_Parse(text);
    if (*slot)
        l_push_json(L, *slot);
    else
        lua_newtable(L);
    pt_lua_box_free(L, box);
    lua_remove(L, box);
}

/* meta.field as JSON text: a string is taken as is, a table is encoded. The text is pushed (so it
 * lives on the stack) and returned; NULL when absent. */
static const char *l_meta_json(lua_State *L, int meta, const char *field) {
    if (lua_isnoneornil(L, meta))
        return NULL;
    lua_getfield(L, meta, field);
    if (lua_isnil(L, -1))
        return NULL; /* leaves nil on the stack; harmless */
    if (lua_type(L, -1) == LUA_TSTRING)
        return lua_tostring(L, -1);
    char err[200] = "";
    cJSON *j = l_to_json(L, -1, 0, err, sizeof err);
    if (!j)
        luaL_error(L, "artifact: meta.%s: %s", field, err);
    void **slot = pt_lua_box_new(L, free);
    *slot = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!*slot)
        luaL_error(L, "artifact: meta.%s: out of memory", field);
    lua_pushstring(L, *slot);
    return lua_tostring(L, -1);
}

static const char *l_meta_str(lua_State *L, int meta, const char *field) {
    if (lua_isnoneornil(L, meta))
        return NULL;
    lua_getfield(L, meta, field);
    if (lua_isnil(L, -1))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "artifact: meta.%s must be a string", field);
    return lua_tostring(L, -1);
}

/* ---- entries ---- */

static pt_dtype l_field_dtype(lua_State *L, int t, const char *field, const char *name, pt_dtype def, int required) {
    lua_getfield(L, t, field);
    pt_dtype dt = def;
    if (lua_isnil(L, -1)) {
        if (required)
            luaL_error(L, "artifact: entry %s has no %s", name, field);
    } else if (pt_artifact_dtype_parse(lua_tostring(L, -1), &dt) != PT_OK) {
        luaL_error(L, "artifact: entry %s: %s", name, pt_last_error());
    }
    lua_pop(L, 1);
    return dt;
}

/* Reads entries (list at idx) into a boxed array; the data/scales strings stay referenced by the
 * entry tables, which stay referenced by the argument list during the call. */
static pt_artifact_entry *l_check_entries(lua_State *L, int idx, int *n_out) {
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)luaL_len(L, idx);
    void **slot = pt_lua_box_new(L, free);
    pt_artifact_entry *e = calloc((size_t)(n > 0 ? n : 1), sizeof *e);
    if (!e)
        luaL_error(L, "artifact: out of memory");
    *slot = e;
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t))
            luaL_error(L, "artifact: entry %d is a %s, not a table", i + 1, luaL_typename(L, t));
        lua_getfield(L, t, "name");
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "artifact: entry %d has no name", i + 1);
        e[i].name = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the entry table */
        const char *name = e[i].name;
        lua_getfield(L, t, "scheme");
        if (pt_scheme_parse(lua_tostring(L, -1), &e[i].scheme) != PT_OK)
            luaL_error(L, "artifact: entry %s: %s", name, pt_last_error());
        lua_pop(L, 1);
        e[i].dtype = l_field_dtype(L, t, "dtype", name, PT_I8, 1);
        e[i].orig_dtype = l_field_dtype(L, t, "orig_dtype", name, e[i].dtype, 0);
        e[i].scale_dtype = l_field_dtype(L, t, "scale_dtype", name, PT_F16, 0);
        lua_getfield(L, t, "packed6");
        e[i].packed6 = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, t, "shape");
        if (!lua_istable(L, -1))
            luaL_error(L, "artifact: entry %s has no shape table", name);
        lua_Integer nd = luaL_len(L, -1);
        if (nd > PT_MAX_DIMS)
            luaL_error(L, "artifact: entry %s has %d dims (at most %d)", name, (int)nd, PT_MAX_DIMS);
        e[i].ndim = (int)nd;
        for (int k = 0; k < e[i].ndim; k++) {
            lua_geti(L, -1, k + 1);
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum || v < 0)
                luaL_error(L, "artifact: entry %s: shape[%d] is not a size", name, k + 1);
            e[i].shape[k] = v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, t, "data");
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "artifact: entry %s: data must be a string of bytes", name);
        e[i].data = lua_tolstring(L, -1, &e[i].data_len);
        lua_pop(L, 1);
        lua_getfield(L, t, "scales");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "artifact: entry %s: scales must be a string of bytes", name);
            e[i].scales = lua_tolstring(L, -1, &e[i].scales_len);
        }
        lua_pop(L, 2); /* scales, entry table */
    }
    *n_out = n;
    return e;
}

static void l_check_codec(lua_State *L, int i, pt_codec *c, int *level) {
    if (pt_codec_parse(luaL_optstring(L, i, "zstd"), c) != PT_OK)
        luaL_argerror(L, i, pt_last_error());
    *level = (int)luaL_optinteger(L, i + 1, pt_codec_max_level(*c));
}

/* Packs args (entries, meta, codec, level, shuffle) starting at index a; leaves the bytes in a box
 * and returns the box index (the buffer is *slot_out, its length *len). */
static int l_pack_into(lua_State *L, int a, void ***slot_out, size_t *len) {
    lua_settop(L, a + 4); /* missing optional arguments become nil before anything is pushed */
    int n;
    pt_artifact_entry *e = l_check_entries(L, a, &n);
    (void)e;
    int meta = a + 1;
    if (!lua_isnoneornil(L, meta))
        luaL_checktype(L, meta, LUA_TTABLE);
    pt_artifact_meta m = {0};
    m.recipe = l_meta_str(L, meta, "recipe");
    m.tokenizer_sha256 = l_meta_str(L, meta, "tokenizer_sha256");
    m.config_json = l_meta_json(L, meta, "config");
    m.extra_json = l_meta_json(L, meta, "extra");
    pt_codec c;
    int level;
    l_check_codec(L, a + 2, &c, &level);
    int shuffle = lua_toboolean(L, a + 4);
    void **slot = pt_lua_box_new(L, free);
    int box = lua_gettop(L);
    PT_LUA_CHECK(L, pt_artifact_pack(e, n, &m, c, level, shuffle, (uint8_t **)slot, len));
    *slot_out = slot;
    return box;
}

static int l_pack(lua_State *L) {
    void **slot;
    size_t len;
    int box = l_pack_into(L, 1, &slot, &len);
    lua_pushlstring(L, *slot, len);
    pt_lua_box_free(L, box);
    return 1;
}

static int l_write(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    void **slot;
    size_t len;
    int box = l_pack_into(L, 2, &slot, &len);
    pt_chunk ch = {*slot, len};
    pt_status s = pt_file_write_atomic(path, &ch, 1);
    pt_lua_box_free(L, box);
    PT_LUA_CHECK(L, s);
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
}

static void l_artifact_free(void *p) {
    pt_artifact_free(p);
    free(p);
}

static void l_push_sizes(lua_State *L, const pt_artifact *a) {
    lua_newtable(L);
    lua_pushinteger(L, (lua_Integer)a->file_len);
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, PT_ARTIFACT_HEADER_BYTES);
    lua_setfield(L, -2, "header");
    lua_pushinteger(L, (lua_Integer)a->stored_len);
    lua_setfield(L, -2, "stored");
    lua_pushinteger(L, (lua_Integer)a->payload_len);
    lua_setfield(L, -2, "payload");
    lua_pushinteger(L, (lua_Integer)a->json_len);
    lua_setfield(L, -2, "json");
    lua_Integer data = 0, scales = 0;
    lua_newtable(L);
    for (int i = 0; i < a->n; i++) {
        const char *sn = pt_scheme_name(a->entries[i].scheme);
        lua_getfield(L, -1, sn);
        lua_Integer cur = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushinteger(L, cur + (lua_Integer)(a->entries[i].data_len + a->entries[i].scales_len));
        lua_setfield(L, -2, sn);
        data += (lua_Integer)a->entries[i].data_len;
        scales += (lua_Integer)a->entries[i].scales_len;
    }
    lua_setfield(L, -2, "by_scheme");
    lua_pushinteger(L, data);
    lua_setfield(L, -2, "data");
    lua_pushinteger(L, scales);
    lua_setfield(L, -2, "scales");
}

/* Pushes entries, meta for a parsed artifact. */
static int l_push_artifact(lua_State *L, const pt_artifact *a) {
    lua_createtable(L, a->n, 0);
    for (int i = 0; i < a->n; i++) {
        const pt_artifact_entry *e = &a->entries[i];
        lua_createtable(L, 0, 10);
        lua_pushstring(L, e->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, pt_scheme_name(e->scheme));
        lua_setfield(L, -2, "scheme");
        lua_pushstring(L, pt_artifact_dtype_name(e->dtype));
        lua_setfield(L, -2, "dtype");
        lua_pushstring(L, pt_artifact_dtype_name(e->orig_dtype));
        lua_setfield(L, -2, "orig_dtype");
        lua_pushboolean(L, e->packed6);
        lua_setfield(L, -2, "packed6");
        lua_createtable(L, e->ndim, 0);
        for (int k = 0; k < e->ndim; k++) {
            lua_pushinteger(L, e->shape[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "shape");
        lua_pushlstring(L, e->data_len ? e->data : "", e->data_len);
        lua_setfield(L, -2, "data");
        if (e->scheme == PT_SCHEME_INT6_PER_ROW || e->scheme == PT_SCHEME_INT8_PER_ROW ||
            e->scheme == PT_SCHEME_INT8_PER_TENSOR) {
            lua_pushstring(L, pt_artifact_dtype_name(e->scale_dtype));
            lua_setfield(L, -2, "scale_dtype");
            lua_pushlstring(L, e->scales_len ? e->scales : "", e->scales_len);
            lua_setfield(L, -2, "scales");
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_newtable(L);
    lua_pushinteger(L, a->version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, a->recipe);
    lua_setfield(L, -2, "recipe");
    lua_pushstring(L, a->tokenizer_sha256);
    lua_setfield(L, -2, "tokenizer_sha256");
    lua_pushstring(L, a->config_json);
    lua_setfield(L, -2, "config_json");
    l_push_json_text(L, a->config_json);
    lua_setfield(L, -2, "config");
    lua_pushstring(L, a->extra_json);
    lua_setfield(L, -2, "extra_json");
    l_push_json_text(L, a->extra_json);
    lua_setfield(L, -2, "extra");
    lua_pushstring(L, pt_codec_name(a->codec));
    lua_setfield(L, -2, "codec");
    lua_pushinteger(L, a->level);
    lua_setfield(L, -2, "level");
    lua_pushboolean(L, a->shuffle);
    lua_setfield(L, -2, "shuffle");
    l_push_sizes(L, a);
    lua_setfield(L, -2, "sizes");
    return 2;
}

static pt_artifact *l_new_artifact(lua_State *L, int *box) {
    void **slot = pt_lua_box_new(L, l_artifact_free);
    *box = lua_gettop(L);
    pt_artifact *a = calloc(1, sizeof *a);
    if (!a)
        luaL_error(L, "artifact: out of memory");
    *slot = a;
    return a;
}

static int l_unpack(lua_State *L) {
    lua_settop(L, 2);
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    const char *what = luaL_optstring(L, 2, "<bytes>");
    int box;
    pt_artifact *a = l_new_artifact(L, &box);
    PT_LUA_CHECK(L, pt_artifact_unpack((const uint8_t *)buf, len, what, a));
    l_push_artifact(L, a);
    pt_lua_box_free(L, box);
    return 2;
}

static int l_read(lua_State *L) {
    lua_settop(L, 1);
    const char *path = luaL_checkstring(L, 1);
    int box;
    pt_artifact *a = l_new_artifact(L, &box);
    PT_LUA_CHECK(L, pt_artifact_read(path, a));
    l_push_artifact(L, a);
    pt_lua_box_free(L, box);
    return 2;
}

static int l_sizes(lua_State *L) {
    lua_settop(L, 2);
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    int box;
    pt_artifact *a = l_new_artifact(L, &box);
    PT_LUA_CHECK(L, pt_artifact_unpack((const uint8_t *)buf, len, luaL_optstring(L, 2, "<bytes>"), a));
    l_push_sizes(L, a);
    pt_lua_box_free(L, box);
    return 1;
}

static const luaL_Reg artifact_fns[] = {{"pack", l_pack},   {"unpack", l_unpack}, {"write", l_write},
                                        {"read", l_read},   {"sizes", l_sizes},   {NULL, NULL}};

static int luaopen_artifact(lua_State *L) {
    luaL_newlib(L, artifact_fns);
    lua_newtable(L);
    for (int i = 0; i < PT_NSCHEMES; i++) {
        lua_pushstring(L, pt_scheme_name((pt_scheme)i));
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "schemes");
    lua_pushinteger(L, PT_ARTIFACT_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
PT_LUA_MODULE("proteus._artifact", luaopen_artifact)
