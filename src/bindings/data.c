/* data.c (bindings) — the Lua module "proteus._data": token shards, token buffers, the training
 * stream, SentencePiece tokenizers and BPB byte tables. The public wrapper is lua/lib/proteus/data.lua.
 *
 *   local D = require "proteus._data"
 *   local val = D.read("data/sample/fineweb_val_*.bin")   -- Tokens: concatenation of a sorted glob
 *   #val, val:get(0), val:sub(a, b), val:totable(a, b), val:bytes(), val:tensor(a, b, "i64")
 *   val:check_vocab(1024, "val"), val:docs() --> starts, lens (0-based starts, §3.7), val:write(path)
 *   D.read_shard(path), D.shard_info(path) --> count, D.list(pattern) --> {paths}, {counts}
 *   D.tokens{1, 5, 7} / D.tokens(packed_u16_string) --> Tokens
 *   local s = D.stream("data/sample/fineweb_train_*.bin")
 *   s:take(n), s:next_batch(n, rank, world) --> Tokens (n+1), s:pos() --> shard, offset; s:set_pos(..)
 *   local tok = D.tokenizer("data/tokenizers/fineweb_1024_bpe.model")
 *   tok:vocab_size(), tok:sha256(), tok:piece(id), tok:piece_type(id), tok:id(piece)
 *   local bt = tok:byte_tables(model_vocab)   -- bt:size(), bt:bytes(p, y), bt:entry(id), bt:sum(tokens)
 *   D.sha256(string), D.sha256_file(path)
 *
 * Token positions are 0-based (spec convention). Tested by tests/lua/test_data.lua.
 */
#include <stdlib.h> /* malloc, free */
#include <string.h> /* memcpy */

#include "../host/pt_sha256.h"
#include "../host/pt_shards.h"
#include "../host/pt_sptok.h"
#include "pt_lua_data.h"

#define PT_STREAM_MT "proteus.TokenStream"
#define PT_TOKENIZER_MT "proteus.Tokenizer"

/* ---- Tokens ---- */

pt_lua_tokens *pt_lua_push_tokens(lua_State *L, uint16_t *data, int64_t count) {
    pt_lua_tokens *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->data = data;
    u->count = count;
    pt_lua_data_types(L);
    luaL_setmetatable(L, PT_TOKENS_MT);
    return u;
}

pt_lua_tokens *pt_lua_check_tokens(lua_State *L, int i) {
    pt_lua_tokens *u = luaL_checkudata(L, i, PT_TOKENS_MT);
    if (u->count > 0 && !u->data)
        luaL_error(L, "Tokens were released");
    return u;
}

static int tokens_release(lua_State *L) {
    pt_lua_tokens *u = luaL_checkudata(L, 1, PT_TOKENS_MT);
    free(u->data);
    u->data = NULL;
    u->count = 0;
    return 0;
}

static int tokens_len(lua_State *L) {
    lua_pushinteger(L, pt_lua_check_tokens(L, 1)->count);
    return 1;
}

static int tokens_tostring(lua_State *L) {
    lua_pushfstring(L, "proteus.Tokens(%I tokens)", (lua_Integer)pt_lua_check_tokens(L, 1)->count);
    return 1;
}

/* optional [a, b) range arguments at i, i+1 (defaults: whole buffer) */
static void tokens_range(lua_State *L, pt_lua_tokens *u, int i, int64_t *a, int64_t *b) {
    *a = luaL_optinteger(L, i, 0);
    *b = luaL_optinteger(L, i + 1, u->count);
    if (*a < 0 || *b > u->count || *a > *b)
        luaL_error(L, "token range [%I, %I) is outside [0, %I)", (lua_Integer)*a, (lua_Integer)*b,
                   (lua_Integer)u->count);
}

static int tokens_get(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 0 || i >= u->count)
        return luaL_error(L, "token index %I is outside [0, %I)", i, (lua_Integer)u->count);
    lua_pushinteger(L, u->data[i]);
    return 1;
}

static int tokens_sub(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int64_t a, b;
    tokens_range(L, u, 2, &a, &b);
    uint16_t *d = malloc((size_t)(b - a > 0 ? b - a : 1) * sizeof *d);
    if (!d)
        return luaL_error(L, "out of memory copying %I tokens", (lua_Integer)(b - a));
    if (b > a)
        memcpy(d, u->data + a, (size_t)(b - a) * sizeof *d);
    pt_lua_push_tokens(L, d, b - a);
    return 1;
}

static int tokens_totable(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int64_t a, b;
    tokens_range(L, u, 2, &a, &b);
    lua_createtable(L, (int)(b - a), 0);
    for (int64_t i = a; i < b; i++) {
        lua_pushinteger(L, u->data[i]);
        lua_rawseti(L, -2, i - a + 1);
    }
    return 1;
}

static int tokens_bytes(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int64_t a, b;
    tokens_range(L, u, 2, &a, &b);
    lua_pushlstring(L, (const char *)(u->data + a), (size_t)(b - a) * 2); /* little-endian host */
    return 1;
}

static int tokens_tensor(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int64_t a, b;
    tokens_range(L, u, 2, &a, &b);
    pt_dtype dt = PT_I64;
    const char *name = luaL_optstring(L, 4, "i64");
    PT_LUA_CHECK(L, pt_dtype_parse(name, &dt));
    if (dt != PT_I64 && dt != PT_I32 && dt != PT_U16)
        return luaL_error(L, "Tokens:tensor: dtype %s is not an integer type for token ids (use i64, i32, u16)",
                          name);
    int64_t shape[1] = {b - a};
    pt_tensor *t = NULL;
    PT_LUA_CHECK(L, pt_tensor_empty(&t, dt, PT_CPU, 1, shape));
    void *p = pt_tensor_data(t);
    for (int64_t i = 0; i < b - a; i++) {
        uint16_t v = u->data[a + i];
        if (dt == PT_I64)
            ((int64_t *)p)[i] = v;
        else if (dt == PT_I32)
            ((int32_t *)p)[i] = v;
        else
            ((uint16_t *)p)[i] = v;
    }
    pt_lua_push_tensor(L, t);
    return 1;
}

static int tokens_check_vocab(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int vocab = (int)luaL_checkinteger(L, 2);
    const char *name = luaL_optstring(L, 3, "the tokens");
    PT_LUA_CHECK(L, pt_tokens_check_vocab(u->data, u->count, vocab, name));
    lua_settop(L, 1);
    return 1;
}

static int tokens_docs(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    int64_t *s = NULL, *l = NULL, n = 0;
    PT_LUA_CHECK(L, pt_docs_split(u->data, u->count, &s, &l, &n));
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, s[i]);
        lua_rawseti(L, -3, i + 1);
        lua_pushinteger(L, l[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(s);
    free(l);
    return 2;
}

static int tokens_write(lua_State *L) {
    pt_lua_tokens *u = pt_lua_check_tokens(L, 1);
    PT_LUA_CHECK(L, pt_shard_write(luaL_checkstring(L, 2), u->data, u->count));
    return 0;
}

static const luaL_Reg tokens_methods[] = {
    {"get", tokens_get},       {"sub", tokens_sub},     {"totable", tokens_totable},
    {"bytes", tokens_bytes},   {"tensor", tokens_tensor}, {"check_vocab", tokens_check_vocab},
    {"docs", tokens_docs},     {"write", tokens_write}, {"release", tokens_release},
    {NULL, NULL}};

/* ---- ByteTables ---- */

pt_byte_tables *pt_lua_check_byte_tables(lua_State *L, int i) {
    pt_lua_byte_tables *u = luaL_checkudata(L, i, PT_BYTE_TABLES_MT);
    if (!u->bt)
        luaL_error(L, "ByteTables were released");
    return u->bt;
}

static int bt_release(lua_State *L) {
    pt_lua_byte_tables *u = luaL_checkudata(L, 1, PT_BYTE_TABLES_MT);
    pt_byte_tables_free(u->bt);
    u->bt = NULL;
    return 0;
}

static int bt_size(lua_State *L) {
    lua_pushinteger(L, pt_lua_check_byte_tables(L, 1)->size);
    return 1;
}

static int bt_sp_vocab(lua_State *L) {
    lua_pushinteger(L, pt_lua_check_byte_tables(L, 1)->sp_vocab);
    return 1;
}

static int bt_check_id(lua_State *L, const pt_byte_tables *bt, int i) {
    lua_Integer id = luaL_checkinteger(L, i);
    if (id < 0 || id >= bt->size)
        luaL_error(L, "token id %I is outside the byte tables (%d entries)", id, bt->size);
    return (int)id;
}

static int bt_bytes(lua_State *L) {
    pt_byte_tables *bt = pt_lua_check_byte_tables(L, 1);
    int p = bt_check_id(L, bt, 2), y = bt_check_id(L, bt, 3);
    lua_pushinteger(L, pt_byte_tables_bytes(bt, p, y));
    return 1;
}

static int bt_entry(lua_State *L) {
    pt_byte_tables *bt = pt_lua_check_byte_tables(L, 1);
    int id = bt_check_id(L, bt, 2);
    lua_pushinteger(L, bt->base_bytes[id]);
    lua_pushboolean(L, bt->has_space[id]);
    lua_pushboolean(L, bt->is_boundary[id]);
    return 3;
}

static int bt_sum(lua_State *L) {
    pt_byte_tables *bt = pt_lua_check_byte_tables(L, 1);
    pt_lua_tokens *u = pt_lua_check_tokens(L, 2);
    int64_t s = 0;
    PT_LUA_CHECK(L, pt_byte_tables_sum(bt, u->data, u->count, luaL_optstring(L, 3, "the tokens"), &s));
    lua_pushinteger(L, s);
    return 1;
}

static const luaL_Reg bt_methods[] = {{"size", bt_size},   {"sp_vocab", bt_sp_vocab}, {"bytes", bt_bytes},
                                      {"entry", bt_entry}, {"sum", bt_sum},           {"release", bt_release},
                                      {NULL, NULL}};

static void new_type(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction release,
                     lua_CFunction len, lua_CFunction tostr) {
    if (!luaL_newmetatable(L, mt)) {
        lua_pop(L, 1);
        return;
    }
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    if (len) {
        lua_pushcfunction(L, len);
        lua_setfield(L, -2, "__len");
    }
    if (tostr) {
        lua_pushcfunction(L, tostr);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

/* ---- Tokenizer ---- */

static pt_sptok *check_tokenizer(lua_State *L, int i) {
    pt_sptok **u = luaL_checkudata(L, i, PT_TOKENIZER_MT);
    if (!*u)
        luaL_error(L, "Tokenizer was released");
    return *u;
}

static int tok_release(lua_State *L) {
    pt_sptok **u = luaL_checkudata(L, 1, PT_TOKENIZER_MT);
    pt_sptok_free(*u);
    *u = NULL;
    return 0;
}

static int tok_vocab_size(lua_State *L) {
    lua_pushinteger(L, check_tokenizer(L, 1)->vocab);
    return 1;
}

static int tok_sha256(lua_State *L) {
    lua_pushstring(L, check_tokenizer(L, 1)->sha256);
    return 1;
}

static int tok_check_id(lua_State *L, const pt_sptok *t, int i) {
    lua_Integer id = luaL_checkinteger(L, i);
    if (id < 0 || id >= t->vocab)
        luaL_error(L, "token id %I is outside the tokenizer's vocabulary (%d)", id, t->vocab);
    return (int)id;
}

static int tok_piece(lua_State *L) {
    pt_sptok *t = check_tokenizer(L, 1);
    lua_pushstring(L, t->pieces[tok_check_id(L, t, 2)]);
    return 1;
}

static int tok_piece_type(lua_State *L) {
    static const char *names[] = {"?", "normal", "unknown", "control", "user_defined", "unused", "byte"};
    pt_sptok *t = check_tokenizer(L, 1);
    lua_pushstring(L, names[t->types[tok_check_id(L, t, 2)]]);
    return 1;
}

static int tok_id(lua_State *L) {
    int id = pt_sptok_piece_id(check_tokenizer(L, 1), luaL_checkstring(L, 2));
    if (id < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, id);
    return 1;
}

static int tok_byte_tables(lua_State *L) {
    pt_sptok *t = check_tokenizer(L, 1);
    int model_vocab = (int)luaL_optinteger(L, 2, 0);
    pt_lua_byte_tables *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->bt = NULL;
    luaL_setmetatable(L, PT_BYTE_TABLES_MT);
    PT_LUA_CHECK(L, pt_byte_tables_build(&u->bt, t, model_vocab));
    return 1;
}

static const luaL_Reg tok_methods[] = {{"vocab_size", tok_vocab_size}, {"sha256", tok_sha256},
                                       {"piece", tok_piece},           {"piece_type", tok_piece_type},
                                       {"id", tok_id},                 {"byte_tables", tok_byte_tables},
                                       {"release", tok_release},       {NULL, NULL}};

/* ---- TokenStream ---- */

typedef struct {
    pt_shard_set *set;
    pt_token_stream st;
} pt_lua_stream;

static pt_lua_stream *check_stream(lua_State *L, int i) {
    pt_lua_stream *u = luaL_checkudata(L, i, PT_STREAM_MT);
    if (!u->set)
        luaL_error(L, "TokenStream was closed");
    return u;
}

static int stream_release(lua_State *L) {
    pt_lua_stream *u = luaL_checkudata(L, 1, PT_STREAM_MT);
    pt_shard_set_close(u->set);
    u->set = NULL;
    return 0;
}

static uint16_t *alloc_tokens(lua_State *L, int64_t n) {
    if (n < 0)
        luaL_error(L, "cannot take %I tokens", (lua_Integer)n);
    uint16_t *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    if (!d)
        luaL_error(L, "out of memory for %I tokens", (lua_Integer)n);
    return d;
}

static int stream_take(lua_State *L) {
    pt_lua_stream *u = check_stream(L, 1);
    int64_t n = luaL_checkinteger(L, 2);
    uint16_t *d = alloc_tokens(L, n);
    pt_status s = pt_stream_take(&u->st, n, d);
    if (s != PT_OK) {
        free(d);
        return pt_lua_raise(L, s);
    }
    pt_lua_push_tokens(L, d, n);
    return 1;
}

static int stream_next_batch(lua_State *L) {
    pt_lua_stream *u = check_stream(L, 1);
    int64_t n = luaL_checkinteger(L, 2);
    int rank = (int)luaL_optinteger(L, 3, 0), world = (int)luaL_optinteger(L, 4, 1);
    uint16_t *d = alloc_tokens(L, n + 1);
    pt_status s = pt_stream_next_batch(&u->st, n, rank, world, d);
    if (s != PT_OK) {
        free(d);
        return pt_lua_raise(L, s);
    }
    pt_lua_push_tokens(L, d, n + 1);
    return 1;
}

static int stream_pos(lua_State *L) {
    pt_lua_stream *u = check_stream(L, 1);
    int sh;
    int64_t off;
    pt_stream_get_pos(&u->st, &sh, &off);
    lua_pushinteger(L, sh);
    lua_pushinteger(L, off);
    return 2;
}

static int stream_set_pos(lua_State *L) {
    pt_lua_stream *u = check_stream(L, 1);
    PT_LUA_CHECK(L, pt_stream_set_pos(&u->st, (int)luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    return 0;
}

static int stream_total(lua_State *L) {
    lua_pushinteger(L, check_stream(L, 1)->set->total);
    return 1;
}

static int stream_shards(lua_State *L) {
    pt_lua_stream *u = check_stream(L, 1);
    lua_createtable(L, u->set->n, 0);
    for (int i = 0; i < u->set->n; i++) {
        lua_pushstring(L, u->set->shards[i]->path);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg stream_methods[] = {{"take", stream_take},     {"next_batch", stream_next_batch},
                                          {"pos", stream_pos},       {"set_pos", stream_set_pos},
                                          {"total", stream_total},   {"shards", stream_shards},
                                          {"close", stream_release}, {NULL, NULL}};

void pt_lua_data_types(lua_State *L) {
    new_type(L, PT_TOKENS_MT, tokens_methods, tokens_release, tokens_len, tokens_tostring);
    new_type(L, PT_BYTE_TABLES_MT, bt_methods, bt_release, NULL, NULL);
    new_type(L, PT_TOKENIZER_MT, tok_methods, tok_release, NULL, NULL);
    new_type(L, PT_STREAM_MT, stream_methods, stream_release, NULL, NULL);
}

/* ---- module functions ---- */

static int l_read_shard(lua_State *L) {
    pt_shard *s = NULL;
    PT_LUA_CHECK(L, pt_shard_open(&s, luaL_checkstring(L, 1)));
    uint16_t *d = malloc((size_t)(s->count > 0 ? s->count : 1) * sizeof *d);
    if (!d) {
        pt_shard_close(s);
        return luaL_error(L, "out of memory reading %s", lua_tostring(L, 1));
    }
    if (s->count > 0)
        memcpy(d, s->tokens, (size_t)s->count * sizeof *d);
    int64_t n = s->count;
    pt_shard_close(s);
    pt_lua_push_tokens(L, d, n);
    return 1;
}

static int l_shard_info(lua_State *L) {
    pt_shard *s = NULL;
    PT_LUA_CHECK(L, pt_shard_open(&s, luaL_checkstring(L, 1)));
    lua_pushinteger(L, s->count);
    pt_shard_close(s);
    return 1;
}

static int l_list(lua_State *L) {
    pt_shard_set *set = NULL;
    PT_LUA_CHECK(L, pt_shard_set_open(&set, luaL_checkstring(L, 1)));
    lua_createtable(L, set->n, 0);
    lua_createtable(L, set->n, 0);
    for (int i = 0; i < set->n; i++) {
        lua_pushstring(L, set->shards[i]->path);
        lua_rawseti(L, -3, i + 1);
        lua_pushinteger(L, set->shards[i]->count);
        lua_rawseti(L, -2, i + 1);
    }
    pt_shard_set_close(set);
    return 2;
}

static int l_read(lua_State *L) {
    pt_shard_set *set = NULL;
    PT_LUA_CHECK(L, pt_shard_set_open(&set, luaL_checkstring(L, 1)));
    uint16_t *d = NULL;
    int64_t n = 0;
    pt_status s = pt_shard_set_concat(set, &d, &n);
    pt_shard_set_close(set);
    PT_LUA_CHECK(L, s);
    pt_lua_push_tokens(L, d, n);
    return 1;
}

static int l_tokens(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (len % 2)
            return luaL_error(L, "packed tokens: %d bytes is not a whole number of uint16 values", (int)len);
        uint16_t *d = alloc_tokens(L, (int64_t)(len / 2));
        memcpy(d, s, len);
        pt_lua_push_tokens(L, d, (int64_t)(len / 2));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t n = (int64_t)luaL_len(L, 1);
    for (int64_t i = 1; i <= n; i++) { /* validate before allocating: luaL_error must not leak */
        lua_rawgeti(L, 1, i);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > 65535)
            return luaL_error(L, "tokens: element %I is not an integer token id in 0..65535", (lua_Integer)i);
        lua_pop(L, 1);
    }
    uint16_t *d = alloc_tokens(L, n);
    for (int64_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        d[i - 1] = (uint16_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    pt_lua_push_tokens(L, d, n);
    return 1;
}

static int l_stream(lua_State *L) {
    const char *pattern = luaL_checkstring(L, 1);
    pt_lua_stream *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->set = NULL;
    luaL_setmetatable(L, PT_STREAM_MT);
    PT_LUA_CHECK(L, pt_shard_set_open(&u->set, pattern));
    PT_LUA_CHECK(L, pt_stream_init(&u->st, u->set));
    return 1;
}

static int l_tokenizer(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    pt_sptok **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, PT_TOKENIZER_MT);
    PT_LUA_CHECK(L, pt_sptok_load(u, path));
    return 1;
}

static int l_tokenizer_from_string(lua_State *L) {
    size_t n;
    const char *buf = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "model");
    pt_sptok **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, PT_TOKENIZER_MT);
    PT_LUA_CHECK(L, pt_sptok_parse(u, buf, n, name));
    return 1;
}

static int l_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    uint8_t d[32];
    char hex[65];
    pt_sha256(s, n, d);
    pt_sha256_hex(d, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_sha256_file(lua_State *L) {
    char hex[65];
    PT_LUA_CHECK(L, pt_sha256_file(luaL_checkstring(L, 1), hex));
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg data_fns[] = {{"read_shard", l_read_shard},
                                    {"shard_info", l_shard_info},
                                    {"list", l_list},
                                    {"read", l_read},
                                    {"tokens", l_tokens},
                                    {"stream", l_stream},
                                    {"tokenizer", l_tokenizer},
                                    {"tokenizer_from_string", l_tokenizer_from_string},
                                    {"sha256", l_sha256},
                                    {"sha256_file", l_sha256_file},
                                    {NULL, NULL}};

static int luaopen_data(lua_State *L) {
    pt_lua_data_types(L);
    luaL_newlib(L, data_fns);
    lua_pushinteger(L, PT_SHARD_BOS);
    lua_setfield(L, -2, "BOS");
    lua_pushinteger(L, PT_SHARD_MAGIC);
    lua_setfield(L, -2, "MAGIC");
    return 1;
}

PT_LUA_MODULE("proteus._data", luaopen_data)
