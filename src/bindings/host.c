/* host.c (bindings) — the Lua module "proteus._host": the host's Ctrl-C flag, clock and paths.
 *
 *   local host = require "proteus._host"
 *   host.interrupted()          -- true once Ctrl-C was pressed (poll it between training steps)
 *   host.clear_interrupt()      -- reset the flag (and re-arm Ctrl-C while a chunk runs)
 *   host.trap_interrupt(true)   -- Ctrl-C only sets the flag (no "interrupted!" error); returns old
 *   host.clock()                -- monotonic seconds (double)
 *   host.isatty(fd)             -- true if file descriptor fd (0, 1, 2, ...) is a terminal
 *   host.home()                 -- the lua/lib root in use
 *   host.version                -- "0.1.0"
 *
 * Tested by tests/lua/test_host.lua (build/proteus tests/run.lua tests/lua/test_host.lua).
 */
#include <unistd.h> /* isatty */

#include "../host/pt_host.h"
#include "pt_lua.h"

#ifndef PROTEUS_VERSION
#define PROTEUS_VERSION "unknown"
#endif

static int l_interrupted(lua_State *L) {
    lua_pushboolean(L, pt_host_interrupted());
    return 1;
}

static int l_clear_interrupt(lua_State *L) {
    (void)L;
    pt_host_clear_interrupt();
    return 0;
}

static int l_trap_interrupt(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushboolean(L, pt_host_trap_interrupt(lua_toboolean(L, 1)));
    return 1;
}

static int l_clock(lua_State *L) {
    lua_pushnumber(L, pt_host_clock());
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "file descriptor out of range 0..1024");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

static int l_home(lua_State *L) {
    lua_pushstring(L, pt_host_lib_dir());
    return 1;
}

static const luaL_Reg host_fns[] = {
    {"interrupted", l_interrupted},
    {"clear_interrupt", l_clear_interrupt},
    {"trap_interrupt", l_trap_interrupt},
    {"clock", l_clock},
    {"isatty", l_isatty},
    {"home", l_home},
    {NULL, NULL},
};

static int luaopen_host(lua_State *L) {
    luaL_newlib(L, host_fns);
    lua_pushliteral(L, PROTEUS_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

PT_LUA_MODULE("proteus._host", luaopen_host)
