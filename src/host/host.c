/* host.c — runtime services of the proteus executable (see pt_host.h): the SIGINT flag and hook,
 * pt_host_docall (lua_pcall with a traceback handler, as lua.c's docall), finding lua/lib and
 * wiring package.path, and a monotonic clock.
 *
 * Tested through the executable: tests/cli/test_cli.sh, tests/cli/test_repl_tmux.sh and
 * tests/lua/test_host.lua (build/proteus tests/run.lua tests/lua/test_host.lua).
 */
#include "pt_host.h"

#include <lauxlib.h> /* luaL_traceback, luaL_callmeta, luaL_getsubtable */
#include <lualib.h>  /* LUA_LOADLIBNAME */
#include <limits.h>  /* PATH_MAX */
#include <signal.h>  /* sigaction, SIGINT, sig_atomic_t */
#include <stdio.h>   /* snprintf, fprintf */
#include <stdlib.h>  /* getenv, realpath */
#include <string.h>  /* strrchr */
#include <sys/stat.h> /* stat, S_ISDIR */
#include <time.h>    /* clock_gettime, CLOCK_MONOTONIC */
#include <unistd.h>  /* readlink */

#include "../bindings/pt_lua.h" /* pt_lua_install_modules */

/* ---- Ctrl-C ---- */

static volatile sig_atomic_t pt_sigint_flag; /* set by the handler, cleared by the user */
static volatile sig_atomic_t pt_sigint_trap; /* 1: flag only, no Lua hook */
static lua_State *volatile pt_sigint_L;      /* the state running a chunk (NULL: none) */

int pt_host_interrupted(void) { return pt_sigint_flag != 0; }

int pt_host_trap_interrupt(int on) {
    int old = pt_sigint_trap != 0;
    pt_sigint_trap = on ? 1 : 0;
    return old;
}

/* Hook set by the handler: runs at the next Lua instruction and raises the interrupt error. */
static void pt_sigint_stop(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, PT_HOST_INTERRUPT_MSG);
}

static void pt_sigint_set(void (*handler)(int)) {
    struct sigaction sa;
    sa.sa_handler = handler;
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR and the REPL sees it */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static void pt_sigint_handler(int sig) {
    (void)sig;
    pt_sigint_set(SIG_DFL); /* a second Ctrl-C terminates the process */
    pt_sigint_flag = 1;
    lua_State *L = pt_sigint_L;
    if (L && !pt_sigint_trap) /* lua_sethook is safe to call from a signal handler */
        lua_sethook(L, pt_sigint_stop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

void pt_host_clear_interrupt(void) {
    pt_sigint_flag = 0;
    if (pt_sigint_L)
        pt_sigint_set(pt_sigint_handler);
}

/* Message handler: turns the error into a string and appends a traceback (lua.c's msghandler). */
static int pt_msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1; /* an object with __tostring: use that, no traceback */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int pt_host_docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg; /* function index */
    lua_pushcfunction(L, pt_msghandler);
    lua_insert(L, base);
    lua_State *outer = pt_sigint_L; /* docall may nest (the REPL running a script) */
    pt_sigint_L = L;
    pt_sigint_set(pt_sigint_handler);
    int status = lua_pcall(L, narg, nres, base);
    pt_sigint_L = outer;
    if (!outer)
        pt_sigint_set(SIG_DFL);
    lua_remove(L, base);
    return status;
}

/* ---- lua/lib ---- */

static char pt_lib_dir[PATH_MAX];

static int pt_is_lib_dir(const char *dir) {
    char probe[PATH_MAX + 16];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/proteus", dir);
    return stat(probe, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The candidate in pt_lib_dir is it: make it canonical ("build/../lua/lib" -> "lua/lib"). */
static const char *pt_lib_found(void) {
    char real[PATH_MAX];
    if (realpath(pt_lib_dir, real))
        snprintf(pt_lib_dir, sizeof pt_lib_dir, "%s", real);
    return pt_lib_dir;
}

const char *pt_host_lib_dir(void) {
    if (pt_lib_dir[0])
        return pt_lib_dir;
    const char *home = getenv("PROTEUS_HOME");
    if (home && *home) {
        snprintf(pt_lib_dir, sizeof pt_lib_dir, "%s/lua/lib", home);
        if (pt_is_lib_dir(pt_lib_dir))
            return pt_lib_found();
        fprintf(stderr, "proteus: warning: PROTEUS_HOME=%s has no lua/lib/proteus directory; "
                        "looking next to the executable\n", home);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            const char *rel[] = {"/../lua/lib", "/lua/lib"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
                snprintf(pt_lib_dir, sizeof pt_lib_dir, "%.*s%s", PATH_MAX - 16, exe, rel[i]);
                if (pt_is_lib_dir(pt_lib_dir))
                    return pt_lib_found();
            }
        }
    }
#ifdef PROTEUS_SOURCE_DIR
    snprintf(pt_lib_dir, sizeof pt_lib_dir, "%s/lua/lib", PROTEUS_SOURCE_DIR);
#else
    snprintf(pt_lib_dir, sizeof pt_lib_dir, "lua/lib");
#endif
    return pt_lib_dir;
}

void pt_host_setup_state(lua_State *L) {
    const char *lib = pt_host_lib_dir();
    lua_getglobal(L, LUA_LOADLIBNAME);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "path");
        const char *old = lua_tostring(L, -1);
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lib, lib, old ? old : "");
        lua_setfield(L, -3, "path");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    pt_lua_install_modules(L);
}

double pt_host_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
