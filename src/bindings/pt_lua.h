/* pt_lua.h — what every binding file shares: the tensor userdata, turning pt_status into Lua
 * errors (the one place where C errors become Lua errors), and module registration.
 *
 * A binding file registers its module at load time; the host installs all of them into
 * package.preload, so `require "proteus._codec"` works:
 *
 *   static int l_compress(lua_State *L) { ... PT_LUA_CHECK(L, pt_zstd_compress(...)); ... }
 *   static const luaL_Reg codec_fns[] = {{"compress", l_compress}, {NULL, NULL}};
 *   static int luaopen_codec(lua_State *L) { luaL_newlib(L, codec_fns); return 1; }
 *   PT_LUA_MODULE("proteus._codec", luaopen_codec)
 *
 * Lua modules written in C are named proteus._xxx; the public modules (proteus, proteus.codec, ...)
 * are Lua files in lua/lib/proteus/ that wrap them.
 */
#ifndef PT_LUA_H
#define PT_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "../host/pt_tensor.h"

#define PT_TENSOR_MT "proteus.Tensor"

/* Userdata layout: a pointer that becomes NULL once released (__gc and __close share one
 * idempotent release, as liolib's file handles). */
typedef struct {
    pt_tensor *t;
} pt_lua_tensor;

/* Pushes a tensor userdata; takes over the caller's reference to t (t may not be NULL). */
void pt_lua_push_tensor(lua_State *L, pt_tensor *t);
/* Checks argument i is a live tensor and returns it (borrowed). */
pt_tensor *pt_lua_check_tensor(lua_State *L, int i);
pt_tensor *pt_lua_test_tensor(lua_State *L, int i); /* NULL if not a tensor */
/* Creates the tensor metatable if this state has none yet (push_tensor calls it). */
void pt_lua_ensure_tensor_metatable(lua_State *L);
/* Adds methods (t:name(...)) to every tensor; binding files of other op families call this in
 * their luaopen function, and lua/lib/proteus/init.lua requires those modules. */
void pt_lua_add_tensor_methods(lua_State *L, const luaL_Reg *fns);
/* Raises a Lua error with pt_last_error(). Never returns. */
int pt_lua_raise(lua_State *L, pt_status s);
#define PT_LUA_CHECK(L, expr)                       \
    do {                                            \
        pt_status pt_lua_s_ = (expr);               \
        if (pt_lua_s_ != PT_OK)                     \
            return pt_lua_raise((L), pt_lua_s_);    \
    } while (0)

/* Reads a shape from a Lua table {2,3} or from the integer arguments starting at i. */
int pt_lua_check_shape(lua_State *L, int i, int64_t *shape);
pt_dtype pt_lua_opt_dtype(lua_State *L, int i, pt_dtype def);
pt_device pt_lua_opt_device(lua_State *L, int i, pt_device def);
/* Options at index i: a dtype string, or a table {dtype=, device=, requires_grad=} (rg may be NULL). */
void pt_lua_opts(lua_State *L, int i, pt_dtype *dt, pt_device *dev, int *rg);

/* Module registry */
void pt_lua_register_module(const char *name, lua_CFunction open);
/* Puts every registered module into package.preload. Called by the host on a new state. */
void pt_lua_install_modules(lua_State *L);

#define PT_LUA_MODULE(name, openfn)                                               \
    __attribute__((constructor)) static void pt_lua_reg_##openfn(void) {          \
        pt_lua_register_module(name, openfn);                                     \
    }

#endif
