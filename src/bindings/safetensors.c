/* safetensors.c — Lua binding "proteus._safetensors" (format and checks: src/host/pt_safetensors.h).
 *
 *   local C = require "proteus._safetensors"
 *   C.save(path, {name = tensor, ...} [, {key = "value", ...}])   -- atomic write
 *   local tensors, meta = C.load(path)                             -- name -> CPU tensor, key -> string
 *
 * Public wrapper: lua/lib/proteus/safetensors.lua. Tests: tests/lua/test_safetensors.lua,
 * tests/reference/safetensors_interop.py.
 */
#include <stdlib.h>
#include <string.h>

#include "../host/pt_safetensors.h"
#include "pt_lua.h"
#include "pt_lua_box.h"

static void l_st_list_free(void *p) {
    pt_st_list_free(p);
    free(p);
}

/* A boxed, zero-initialised list that is freed if a Lua error unwinds. */
static pt_st_list *l_st_new_list(lua_State *L) {
    void **slot = pt_lua_box_new(L, l_st_list_free);
    pt_st_list *l = calloc(1, sizeof *l);
    if (!l)
        luaL_error(L, "safetensors: out of memory");
    *slot = l;
    return l;
}

static int l_save(lua_State *L) {
    lua_settop(L, 3);
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_meta = !lua_isnoneornil(L, 3);
    if (has_meta)
        luaL_checktype(L, 3, LUA_TTABLE);
    pt_st_list *l = l_st_new_list(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "safetensors.save %s: tensor table keys must be names (strings), got a %s", path,
                              luaL_typename(L, -2));
        pt_tensor *t = pt_lua_test_tensor(L, -1);
        if (!t)
            return luaL_error(L, "safetensors.save %s: '%s' is a %s, not a tensor", path, lua_tostring(L, -2),
                              luaL_typename(L, -1));
        PT_LUA_CHECK(L, pt_st_list_add(l, lua_tostring(L, -2), t));
        lua_pop(L, 1);
    }
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return luaL_error(L, "safetensors.save %s: metadata must map strings to strings", path);
            lua_pushvalue(L, -1); /* tostring a copy; keeps lua_next's key intact */
            PT_LUA_CHECK(L, pt_st_list_add_meta(l, lua_tostring(L, -3), lua_tostring(L, -1)));
            lua_pop(L, 2);
        }
    }
    PT_LUA_CHECK(L, pt_safetensors_save(path, l));
    return 0;
}

static int l_load(lua_State *L) {
    lua_settop(L, 1);
    const char *path = luaL_checkstring(L, 1);
    pt_st_list *l = l_st_new_list(L);
    int box = lua_gettop(L);
    PT_LUA_CHECK(L, pt_safetensors_load(path, l));
    lua_createtable(L, 0, l->n);
    for (int i = 0; i < l->n; i++) {
        pt_tensor_retain(l->items[i].tensor);
        pt_lua_push_tensor(L, l->items[i].tensor);
        lua_setfield(L, -2, l->items[i].name);
    }
    lua_createtable(L, 0, l->nmeta);
    for (int i = 0; i < l->nmeta; i++) {
        lua_pushstring(L, l->meta[i].value);
        lua_setfield(L, -2, l->meta[i].key);
    }
    pt_lua_box_free(L, box);
    return 2;
}

static const luaL_Reg st_fns[] = {{"save", l_save}, {"load", l_load}, {NULL, NULL}};

static int luaopen_safetensors(lua_State *L) {
    luaL_newlib(L, st_fns);
    return 1;
}
PT_LUA_MODULE("proteus._safetensors", luaopen_safetensors)
