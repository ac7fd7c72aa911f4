/* pt_lua_data.h — userdata shared by the data bindings ("proteus._data", data.c) and the ledger
 * binding ("proteus._ledger", ledger.c): token buffers and byte tables.
 *
 * Positions in the Lua API are 0-based token indices, as in the spec (target t predicts token t
 * from token t-1).
 */
#ifndef PT_LUA_DATA_H
#define PT_LUA_DATA_H

#include <stdint.h>

#include "../host/pt_sptok.h"
#include "pt_lua.h"

#define PT_TOKENS_MT "proteus.Tokens"
#define PT_BYTE_TABLES_MT "proteus.ByteTables"

typedef struct {
    uint16_t *data; /* malloc'd, owned; NULL once released or when count is 0 */
    int64_t count;
} pt_lua_tokens;

typedef struct {
    pt_byte_tables *bt; /* owned; NULL once released */
} pt_lua_byte_tables;

/* Pushes a new Tokens userdata that takes ownership of data (malloc'd). */
pt_lua_tokens *pt_lua_push_tokens(lua_State *L, uint16_t *data, int64_t count);
pt_lua_tokens *pt_lua_check_tokens(lua_State *L, int i);
pt_byte_tables *pt_lua_check_byte_tables(lua_State *L, int i);
/* Creates the Tokens and ByteTables metatables if they do not exist yet (both modules call it). */
void pt_lua_data_types(lua_State *L);

#endif
