/* tests/fuzz/fuzz_checkpoint.c — libFuzzer target for the checkpoint loader
 * (lua/lib/proteus/checkpoint.lua) through the layers it uses: the safetensors reader (C) and the
 * JSON decoder (lua/lib/proteus/json.lua).
 *
 * One Lua state, set up as the proteus executable does (pt_host_setup_state), lives for the whole
 * run. The first input byte selects:
 *   even   the rest is a checkpoint file: ckpt.load(path) under pcall (an error is fine; a crash,
 *          a sanitizer report or a Lua panic is a bug)
 *   odd    the rest is JSON text: json.decode, and when it decodes, json.encode of the result and
 *          json.decode again must succeed (what the decoder accepts the encoder can write back)
 * Lua errors are values here; anything else aborts. Needs PROTEUS_HOME (or the source dir baked in).
 *
 *   bash scripts/fuzz.sh checkpoint 120
 */
#include <stdint.h> /* uint8_t */
#include <stdio.h>  /* fprintf */
#include <stdlib.h> /* abort */
#include <unistd.h> /* close */

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_util.h"
#include "pt_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *pt_fuzz_L;
static long pt_fuzz_iter;

/* fuzz.load(path) and fuzz.json(text), defined in Lua once */
static const char *pt_fuzz_chunk =
    "local ckpt = require 'proteus.checkpoint'\n"
    "local json = require 'proteus.json'\n"
    "local F = {}\n"
    "function F.load(path) return pcall(ckpt.load, path) end\n"
    "function F.json(text)\n"
    "  local ok, v = pcall(json.decode, text)\n"
    "  if not ok then return true end\n"
    "  local ok2, s = pcall(json.encode, v)\n"
    "  if not ok2 then return false, 'encode failed on what decode accepted: ' .. tostring(s) end\n"
    "  local ok3, w = pcall(json.decode, s)\n"
    "  if not ok3 then return false, 'decode failed on what encode wrote: ' .. tostring(w) .. ' text: ' .. s end\n"
    "  return true\n"
    "end\n"
    "return F\n";

static lua_State *pt_fuzz_state(void) {
    if (pt_fuzz_L)
        return pt_fuzz_L;
    lua_State *L = luaL_newstate();
    if (!L)
        abort();
    luaL_openlibs(L);
    pt_host_setup_state(L);
    if (luaL_loadstring(L, pt_fuzz_chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_checkpoint: cannot load proteus.checkpoint: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "pt_fuzz");
    pt_fuzz_L = L;
    return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    lua_State *L = pt_fuzz_state();
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "pt_fuzz");
    if (data[0] % 2 == 0) {
        char path[64];
        int fd = pt_fuzz_memfile(data + 1, size - 1, path, sizeof path);
        if (fd >= 0) {
            lua_getfield(L, -1, "load");
            lua_pushstring(L, path);
            if (lua_pcall(L, 1, 2, 0) != LUA_OK)
                abort(); /* F.load itself uses pcall: only a memory error gets here */
            close(fd);
        }
    } else {
        lua_getfield(L, -1, "json");
        lua_pushlstring(L, (const char *)data + 1, size - 1);
        if (lua_pcall(L, 1, 2, 0) != LUA_OK)
            abort();
        if (!lua_toboolean(L, -2)) {
            fprintf(stderr, "fuzz_checkpoint: %s\n", lua_tostring(L, -1));
            abort();
        }
    }
    lua_settop(L, top);
    if (++pt_fuzz_iter % 64 == 0)
        lua_gc(L, LUA_GCCOLLECT); /* tensors of loaded checkpoints are freed by their __gc */
    return 0;
}
