/* codec.c — Lua binding "proteus._codec": zstd / brotli / zlib, the 4-byte byte shuffle and int6
 * packing on Lua strings, and raw tensor bytes (src/host/pt_codec.h has the formats).
 *
 *   local C = require "proteus._codec"
 *   local z = C.compress(s, "zstd", 22)        -- level defaults to the codec's maximum
 *   local s2 = C.decompress(z, "zstd" [, max_len])  -- max_len defaults to 2 GiB
 *   C.shuffle4(s) / C.unshuffle4(s)
 *   C.pack_int6(int8_bytes) -> packed; C.unpack_int6(packed, n) -> int8_bytes
 *   C.tensor_bytes(t) -> string; C.tensor_from_bytes(s, dtype, shape) -> tensor (CPU)
 *
 * Public wrapper: lua/lib/proteus/codec.lua. Test: tests/lua/test_codec.lua.
 */
#include <stdlib.h> /* free */
#include <string.h> /* memcpy */

#include "../host/pt_codec.h"
#include "pt_lua.h"
#include "pt_lua_box.h"

#define PT_CODEC_DEFAULT_MAX_OUT ((size_t)1 << 31)

static pt_codec l_check_codec(lua_State *L, int i) {
    pt_codec c;
    if (pt_codec_parse(luaL_checkstring(L, i), &c) != PT_OK)
        luaL_argerror(L, i, pt_last_error());
    return c;
}

/* Runs after the C call produced *slot of n bytes: pushes it as a string and frees the buffer. */
static int l_push_boxed(lua_State *L, int box, size_t n) {
    void **slot = lua_touserdata(L, box);
    lua_pushlstring(L, *slot, n);
    pt_lua_box_free(L, box);
    return 1;
}

static int l_compress(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    pt_codec c = l_check_codec(L, 2);
    int level = (int)luaL_optinteger(L, 3, pt_codec_max_level(c));
    void **slot = pt_lua_box_new(L, free);
    int box = lua_gettop(L);
    size_t ol = 0;
    PT_LUA_CHECK(L, pt_codec_compress(c, level, s, n, (uint8_t **)slot, &ol));
    return l_push_boxed(L, box, ol);
}

static int l_decompress(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    pt_codec c = l_check_codec(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, (lua_Integer)PT_CODEC_DEFAULT_MAX_OUT);
    luaL_argcheck(L, max >= 0, 3, "max_len must be >= 0");
    void **slot = pt_lua_box_new(L, free);
    int box = lua_gettop(L);
    size_t ol = 0;
    PT_LUA_CHECK(L, pt_codec_decompress(c, s, n, (size_t)max, (uint8_t **)slot, &ol));
    return l_push_boxed(L, box, ol);
}

static int l_shuffle4(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    size_t m = pt_shuffle4_size(n);
    uint8_t *dst = (uint8_t *)luaL_buffinitsize(L, &b, m);
    pt_shuffle4((const uint8_t *)s, n, dst);
    luaL_pushresultsize(&b, m);
    return 1;
}

static int l_unshuffle4(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    uint8_t *dst = (uint8_t *)luaL_buffinitsize(L, &b, n ? n : 1);
    size_t ol = 0;
    pt_status st = pt_unshuffle4((const uint8_t *)s, n, dst, &ol);
    if (st != PT_OK)
        return pt_lua_raise(L, st);
    luaL_pushresultsize(&b, ol);
    return 1;
}

static int l_pack_int6(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    size_t m = pt_int6_packed_size(n);
    uint8_t *dst = (uint8_t *)luaL_buffinitsize(L, &b, m ? m : 1);
    pt_status st = pt_int6_pack((const int8_t *)s, n, dst);
    if (st != PT_OK)
        return pt_lua_raise(L, st);
    luaL_pushresultsize(&b, m);
    return 1;
}

static int l_unpack_int6(lua_State *L) {
    size_t nb;
    const char *s = luaL_checklstring(L, 1, &nb);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && (size_t)n / 4 <= nb, 2, "value count does not fit the packed bytes");
    luaL_Buffer b;
    int8_t *dst = (int8_t *)luaL_buffinitsize(L, &b, n ? (size_t)n : 1);
    pt_status st = pt_int6_unpack((const uint8_t *)s, nb, (size_t)n, dst);
    if (st != PT_OK)
        return pt_lua_raise(L, st);
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* The tensor's elements as raw little-endian bytes, in row-major order (a CPU contiguous copy is
 * made when needed). */
static int l_tensor_bytes(lua_State *L) {
    pt_tensor *t = pt_lua_check_tensor(L, 1), *cpu = NULL, *c = NULL;
    PT_LUA_CHECK(L, pt_tensor_to(&cpu, t, t->dtype, PT_CPU, 0));
    pt_status s = pt_tensor_contiguous_raw(&c, cpu);
    pt_tensor_release(cpu);
    if (s != PT_OK)
        return pt_lua_raise(L, s);
    pt_lua_push_tensor(L, c); /* the userdata owns c while the string is made */
    size_t nb = (size_t)pt_tensor_numel(c) * pt_dtype_size(c->dtype);
    lua_pushlstring(L, nb ? (const char *)pt_tensor_data(c) : "", nb);
    return 1;
}

static int l_tensor_from_bytes(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    pt_dtype dt;
    PT_LUA_CHECK(L, pt_dtype_parse(luaL_checkstring(L, 2), &dt));
    int64_t shape[PT_MAX_DIMS];
    int ndim = pt_lua_check_shape(L, 3, shape);
    int64_t numel = pt_shape_numel(ndim, shape);
    size_t want = (size_t)numel * pt_dtype_size(dt);
    if (numel < 0 || want != n) {
        char sb[128];
        return luaL_error(L, "tensor_from_bytes: %I bytes given, but shape %s of %s needs %I", (lua_Integer)n,
                          pt_shape_str(ndim, shape, sb, sizeof sb), pt_dtype_name(dt), (lua_Integer)want);
    }
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, PT_CPU, ndim, shape));
    if (n)
        memcpy(pt_tensor_data(t), s, n);
    pt_lua_push_tensor(L, t);
    return 1;
}

static const luaL_Reg codec_fns[] = {
    {"compress", l_compress},       {"decompress", l_decompress},     {"shuffle4", l_shuffle4},
    {"unshuffle4", l_unshuffle4},   {"pack_int6", l_pack_int6},       {"unpack_int6", l_unpack_int6},
    {"tensor_bytes", l_tensor_bytes}, {"tensor_from_bytes", l_tensor_from_bytes}, {NULL, NULL}};

static int luaopen_codec(lua_State *L) {
    luaL_newlib(L, codec_fns);
    lua_newtable(L);
    for (int c = 0; c < PT_NCODECS; c++) {
        lua_pushinteger(L, pt_codec_max_level((pt_codec)c));
        lua_setfield(L, -2, pt_codec_name((pt_codec)c));
    }
    lua_setfield(L, -2, "max_level");
    return 1;
}
PT_LUA_MODULE("proteus._codec", luaopen_codec)
