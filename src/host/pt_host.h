/* pt_host.h — the proteus executable's runtime services: Ctrl-C handling, running Lua chunks the
 * lua.c way (lua_pcall + traceback handler), finding lua/lib, a monotonic clock, and the REPL.
 *
 * Used by src/host/main.c (the CLI), src/host/repl.c (the REPL) and src/bindings/host.c (the Lua
 * module "proteus._host"). Tested by tests/cli/test_cli.sh, tests/cli/test_repl_tmux.sh and
 * tests/lua/test_host.lua.
 *
 * Ctrl-C (SIGINT), following lua.c's laction/lstop:
 *   While a chunk runs through pt_host_docall, SIGINT sets the interrupt flag and a Lua hook, so
 *   the running Lua code raises "interrupted!" at its next instruction; the handler resets itself
 *   to the default, so a second Ctrl-C (e.g. while stuck inside a long C call) kills the process.
 *   A long C/CUDA call never reaches the hook, so C code and training loops poll
 *   pt_host_interrupted() between steps (Lua: require("proteus._host").interrupted()).
 *   In "trap" mode (pt_host_trap_interrupt(1)) SIGINT only sets the flag: the loop that polls it
 *   can checkpoint and stop cleanly.
 */
#ifndef PT_HOST_H
#define PT_HOST_H

#include <lua.h>

#define PT_HOST_INTERRUPT_MSG "interrupted!"

/* 1 if Ctrl-C was pressed since the last clear. Async-signal-safe to read. */
int pt_host_interrupted(void);
/* Clears the flag and, while a chunk runs, re-arms the SIGINT handler. */
void pt_host_clear_interrupt(void);
/* on=1: SIGINT only sets the flag; on=0 (default): it also raises "interrupted!" in Lua.
 * Returns the previous setting. */
int pt_host_trap_interrupt(int on);

/* Runs the function at the top of the stack, below its narg arguments, under lua_pcall with a
 * traceback message handler and the SIGINT handler armed. Returns the lua_pcall status; on error
 * the message (with traceback) is left on the stack. */
int pt_host_docall(lua_State *L, int narg, int nres);

/* Finds the lua/lib root: $PROTEUS_HOME/lua/lib, else <exe_dir>/../lua/lib or <exe_dir>/lua/lib,
 * else PROTEUS_SOURCE_DIR/lua/lib (a directory counts if it has a proteus/ subdirectory). The
 * result is cached; never NULL. */
const char *pt_host_lib_dir(void);
/* Prepends <lib>/?.lua;<lib>/?/init.lua to package.path (the user's LUA_PATH entries stay) and
 * puts the C modules into package.preload. Call after luaL_openlibs. */
void pt_host_setup_state(lua_State *L);

/* Monotonic seconds (CLOCK_MONOTONIC). */
double pt_host_clock(void);

/* The interactive loop: reads chunks (libedit when stdin is a terminal, plain lines otherwise),
 * evaluates them expression-first and prints the results. Returns when input ends. */
void pt_repl_run(lua_State *L, const char *progname);

#endif
