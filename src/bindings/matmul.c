/* matmul.c (bindings) — matmul and linear algebra for Lua (module "proteus._matmul";
 * lua/lib/proteus/init.lua requires it, copies its functions into `proteus` and the methods reach
 * every tensor):
 *
 *   a:matmul(b), pt.matmul(a, b)      torch.matmul semantics (1-D, 2-D, batched with broadcasting)
 *   q, r = pt.qr(a)                   reduced QR of a 2-d matrix (not differentiable)
 *   a:cholesky([upper]), pt.cholesky  lower factor L (A = L Lᵀ), or U (A = Uᵀ U) when upper is true
 *   a:inverse(), pt.inverse(a)        matrix inverse (batched), differentiable
 *
 * Tested by tests/lua/test_reduce.lua (the Lua face of the reduction and matmul families).
 */
#include "../kernels/pt_ops.h"
#include "pt_lua.h"

static int l_matmul(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *b = pt_lua_check_tensor(L, 2), *r = NULL;
    PT_LUA_CHECK(L, pt_matmul(&r, a, b));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int l_qr(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *q = NULL, *r = NULL;
    PT_LUA_CHECK(L, pt_qr(&q, &r, a));
    pt_lua_push_tensor(L, q);
    pt_lua_push_tensor(L, r);
    return 2;
}

static int l_cholesky(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_cholesky(&r, a, lua_toboolean(L, 2)));
    pt_lua_push_tensor(L, r);
    return 1;
}

static int l_inverse(lua_State *L) {
    pt_tensor *a = pt_lua_check_tensor(L, 1), *r = NULL;
    PT_LUA_CHECK(L, pt_inverse(&r, a));
    pt_lua_push_tensor(L, r);
    return 1;
}

static const luaL_Reg matmul_methods[] = {
    {"matmul", l_matmul}, {"qr", l_qr}, {"cholesky", l_cholesky}, {"inverse", l_inverse}, {NULL, NULL}};

static int luaopen_pt_matmul(lua_State *L) {
    pt_lua_add_tensor_methods(L, matmul_methods);
    luaL_newlib(L, matmul_methods);
    return 1;
}
PT_LUA_MODULE("proteus._matmul", luaopen_pt_matmul)
