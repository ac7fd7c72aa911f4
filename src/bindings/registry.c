/* registry.c — the list of C Lua modules (filled by PT_LUA_MODULE constructors) and the one
 * function that turns a pt_status into a Lua error. */
#include "pt_lua.h"

#include <stdio.h>

#define PT_LUA_MAX_MODULES 64
static struct {
    const char *name;
    lua_CFunction open;
} pt_modules[PT_LUA_MAX_MODULES];
static int pt_nmodules;

void pt_lua_register_module(const char *name, lua_CFunction open) {
    if (pt_nmodules < PT_LUA_MAX_MODULES) {
        pt_modules[pt_nmodules].name = name;
        pt_modules[pt_nmodules].open = open;
        pt_nmodules++;
    } else {
        fprintf(stderr, "proteus: too many C modules, %s not registered\n", name);
    }
}

void pt_lua_install_modules(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (int i = 0; i < pt_nmodules; i++) {
        lua_pushcfunction(L, pt_modules[i].open);
        lua_setfield(L, -2, pt_modules[i].name);
    }
    lua_pop(L, 1);
}

int pt_lua_raise(lua_State *L, pt_status s) {
    const char *msg = pt_last_error();
    if (!msg || !*msg)
        msg = pt_status_name(s);
    return luaL_error(L, "%s", msg);
}
