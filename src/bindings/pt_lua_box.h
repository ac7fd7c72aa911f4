/* pt_lua_box.h — a "box" userdata that owns a C allocation while Lua code that may raise runs
 * (lua_pushlstring, lua_newtable, ... can raise out-of-memory and longjmp). The box frees what it
 * holds in __gc, so nothing leaks when an error unwinds; the normal path frees it early with
 * pt_lua_box_free. Shared by the codec, safetensors and artifact bindings.
 *
 *   void **slot = pt_lua_box_new(L, free);   // pushes the box (owns nothing yet)
 *   *slot = malloc(...);                      // now owned by the box
 *   lua_pushlstring(L, *slot, n);             // may raise: the box frees the buffer on collection
 *   pt_lua_box_free(L, -2);                   // frees now and leaves an empty box
 */
#ifndef PT_LUA_BOX_H
#define PT_LUA_BOX_H

#include <lauxlib.h>
#include <lua.h>

#define PT_LUA_BOX_MT "proteus.box"

typedef struct {
    void *p;
    void (*free_fn)(void *);
} pt_lua_box;

static inline int pt_lua_box_gc(lua_State *L) {
    pt_lua_box *b = luaL_checkudata(L, 1, PT_LUA_BOX_MT);
    if (b->p && b->free_fn)
        b->free_fn(b->p);
    b->p = NULL;
    return 0;
}

/* Pushes an empty box that will release its pointer with free_fn; returns the slot. */
static inline void **pt_lua_box_new(lua_State *L, void (*free_fn)(void *)) {
    pt_lua_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    b->free_fn = free_fn;
    if (luaL_newmetatable(L, PT_LUA_BOX_MT)) {
        lua_pushcfunction(L, pt_lua_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, pt_lua_box_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return &b->p;
}

/* Frees what the box at index idx holds now. */
static inline void pt_lua_box_free(lua_State *L, int idx) {
    pt_lua_box *b = luaL_checkudata(L, idx, PT_LUA_BOX_MT);
    if (b->p && b->free_fn)
        b->free_fn(b->p);
    b->p = NULL;
}

#endif
