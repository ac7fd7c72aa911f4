/* main.c — the proteus executable: the command line of Lua's own `lua`, with proteus' modules.
 *
 *   proteus SCRIPT [args...]   run SCRIPT; arg[0] = SCRIPT, arg[1..] = args (key=value stays as is,
 *                              the recipe config library parses it), the args are also `...`
 *   proteus -e CODE            run CODE            proteus -l MOD   require MOD into global MOD
 *   proteus -i [SCRIPT]        run, then REPL      proteus -        run stdin
 *   proteus                    REPL on a terminal, else run stdin
 *   proteus -v | --version     proteus -h | --help
 *   proteus --nproc N SCRIPT [args...]   N ranks on this node: execs `mpirun -np N --bind-to none
 *                              --oversubscribe [--allow-run-as-root] <this proteus> SCRIPT args` (MPI
 *                              launches and bootstraps, docs/distributed.md; PROTEUS_MPIRUN names
 *                              another launcher, PROTEUS_MPIRUN_ARGS adds space-separated arguments)
 *
 * Every chunk runs through pt_host_docall (lua_pcall + traceback). Exit codes: 0 ok, 1 error (a
 * one-line message for a file that cannot be loaded, "proteus: file:line: msg" + traceback for a
 * runtime error), 130 when Ctrl-C interrupted the script. Modules are found under lua/lib (see
 * pt_host_lib_dir), so edited Lua takes effect on the next run without a rebuild.
 *
 * Build: cmake --build build; tests: tests/cli/test_cli.sh build/proteus (also run by ctest).
 */
#include <lauxlib.h> /* luaL_newstate, luaL_loadfile */
#include <lua.h>
#include <lualib.h> /* luaL_openlibs */
#include <stdio.h>  /* fprintf */
#include <errno.h>  /* errno (--nproc exec failure) */
#include <stdlib.h> /* getenv, strtol, malloc */
#include <string.h> /* strcmp, strchr, strrchr, strerror */
#include <unistd.h> /* isatty, execvp, readlink, geteuid */

#include "pt_dist.h" /* pt_dist_abort: a failing rank ends the others */
#include "pt_host.h"

#ifndef PROTEUS_VERSION
#define PROTEUS_VERSION "unknown"
#endif

static const char *pt_progname = "proteus";

static void pt_print_version(void) {
    printf("proteus %s (%s)\n", PROTEUS_VERSION, LUA_RELEASE);
    fflush(stdout);
}

static void pt_print_usage(FILE *f) {
    fprintf(f,
            "usage: proteus [options] [script [args...]]\n"
            "  script args     run a Lua script; args (e.g. key=value overrides) go to `arg` and `...`\n"
            "  -e CODE         execute the string CODE\n"
            "  -l MOD          require module MOD into global MOD (last dotted part); -l g=MOD names it g\n"
            "  -i              enter the REPL after running the script / -e code\n"
            "  -v, --version   print the version\n"
            "  --nproc N       run N ranks on this node through mpirun (first option only)\n"
            "  -h, --help      print this help\n"
            "  --              stop handling options\n"
            "  -               run standard input as the script\n"
            "With no arguments on a terminal proteus starts the REPL. Modules come from lua/lib next to\n"
            "the executable or $PROTEUS_HOME/lua/lib. Ctrl-C interrupts the running chunk.\n");
    fflush(f);
}

static void pt_message(const char *msg) {
    fprintf(stderr, "%s: %s\n", pt_progname, msg);
    fflush(stderr);
}

/* Prints the error on top of the stack (if status is not OK) and pops it. Returns status. */
static int pt_report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        pt_message(msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

static int pt_dochunk(lua_State *L, int status) {
    if (status == LUA_OK)
        status = pt_host_docall(L, 0, 0);
    return pt_report(L, status);
}

/* -l MOD or -l NAME=MOD: global NAME (default: MOD's last dotted part) = require(MOD) */
static int pt_dolibrary(lua_State *L, const char *spec) {
    const char *eq = strchr(spec, '=');
    const char *mod = eq ? eq + 1 : spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = pt_host_docall(L, 1, 1);
    if (status != LUA_OK)
        return pt_report(L, status);
    if (eq) {
        lua_pushlstring(L, spec, (size_t)(eq - spec));
    } else {
        const char *dot = strrchr(mod, '.');
        lua_pushstring(L, dot ? dot + 1 : mod);
    }
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
    return LUA_OK;
}

/* arg table as lua.c: arg[0] = script, arg[1..] = its arguments, negative = the interpreter and
 * options; with no script arg[0] is the program. */
static void pt_create_arg_table(lua_State *L, int argc, char **argv, int script) {
    int zero = script > 0 ? script : 0;
    lua_createtable(L, argc - zero > 0 ? argc - zero : 0, zero + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - zero);
    }
    lua_setglobal(L, "arg");
}

enum { PT_HAS_E = 1, PT_HAS_I = 2, PT_HAS_V = 4, PT_HAS_H = 8, PT_BAD = 16 };

/* Scans the options; *script = index of the script in argv (0 if none). */
static int pt_collect_args(int argc, char **argv, int *script) {
    int flags = 0;
    *script = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') { /* the script, or "-" for stdin */
            *script = i;
            return flags;
        }
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc)
                *script = i + 1;
            return flags;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
            flags |= PT_HAS_V;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            flags |= PT_HAS_H;
        } else if (strcmp(a, "-i") == 0) {
            flags |= PT_HAS_I;
        } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0 || ((a[1] == 'e' || a[1] == 'l') && a[2])) {
            if (a[1] == 'e')
                flags |= PT_HAS_E;
            if (a[2] == '\0' && (++i >= argc || argv[i][0] == '-')) {
                fprintf(stderr, "%s: '%s' needs an argument\n", pt_progname, a);
                return PT_BAD;
            }
        } else {
            fprintf(stderr, "%s: unrecognized option '%s'\n", pt_progname, a);
            return PT_BAD;
        }
    }
    return flags;
}

/* Runs the -e and -l options in order. */
static int pt_run_options(lua_State *L, int argc, char **argv, int script) {
    int end = script > 0 ? script : argc;
    for (int i = 1; i < end; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l'))
            continue;
        const char *val = a[2] ? a + 2 : argv[++i];
        int status;
        if (a[1] == 'e')
            status = pt_dochunk(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)"));
        else
            status = pt_dolibrary(L, val);
        if (status != LUA_OK)
            return status;
    }
    return LUA_OK;
}

static int pt_run_script(lua_State *L, int argc, char **argv, int script) {
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
        fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status != LUA_OK)
        return pt_report(L, status);
    int n = argc - script - 1;
    luaL_checkstack(L, n + 1, "too many script arguments");
    for (int i = script + 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    return pt_report(L, pt_host_docall(L, n, 0));
}

/* Everything that touches Lua runs inside this protected function (as lua.c's pmain). Returns
 * the exit code as an integer. */
static int pt_main(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    lua_settop(L, 0);
    int script;
    int flags = pt_collect_args(argc, argv, &script);
    if (flags & PT_BAD) {
        pt_print_usage(stderr);
        lua_pushinteger(L, 1);
        return 1;
    }
    if (flags & PT_HAS_H) {
        pt_print_usage(stdout);
        lua_pushinteger(L, 0);
        return 1;
    }
    luaL_openlibs(L);
    pt_host_setup_state(L);
    pt_create_arg_table(L, argc, argv, script);
    int interactive = (flags & PT_HAS_I) || (!script && !(flags & (PT_HAS_E | PT_HAS_V)) && isatty(0));
    if ((flags & PT_HAS_V) || (interactive && isatty(0))) /* the REPL's banner on a terminal */
        pt_print_version();
    int code = 0;
    if (pt_run_options(L, argc, argv, script) != LUA_OK)
        code = 1;
    else if (script && pt_run_script(L, argc, argv, script) != LUA_OK)
        code = 1;
    else if (interactive)
        pt_repl_run(L, pt_progname);
    else if (!script && !(flags & (PT_HAS_E | PT_HAS_V)) && pt_dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
        code = 1; /* no arguments and stdin is not a terminal: run stdin */
    if (code && pt_host_interrupted())
        code = 130;
    lua_pushinteger(L, code);
    return 1;
}

/* --nproc N (first option): re-executes this proteus under mpirun with N ranks. Returns the exit
 * code when it cannot (exec failed, bad N); N = 1 runs in this process (argc and argv shifted). */
static int pt_nproc(int *argc, char ***argv) {
    char **av = *argv;
    const char *val = NULL;
    int skip = 0;
    if (strcmp(av[1], "--nproc") == 0) {
        if (*argc < 3) {
            pt_message("--nproc needs a number of ranks: proteus --nproc N script.lua [args]");
            return 1;
        }
        val = av[2];
        skip = 2;
    } else {
        val = av[1] + strlen("--nproc=");
        skip = 1;
    }
    char *end = NULL;
    long n = strtol(val, &end, 10);
    if (!*val || *end || n < 1 || n > 4096) {
        fprintf(stderr, "%s: --nproc %s: give a number of ranks between 1 and 4096\n", pt_progname, val);
        return 1;
    }
    if (n == 1) { /* one rank: this process, without the option */
        av[skip] = av[0];
        *argv = av + skip;
        *argc -= skip;
        return -1;
    }
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        pt_message("--nproc inside an MPI job: ranks are already started by the launcher; drop --nproc");
        return 1;
    }
    const char *launcher = getenv("PROTEUS_MPIRUN");
    if (!launcher || !*launcher)
        launcher = "mpirun";
    static char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0)
        self[len] = '\0';
    else
        snprintf(self, sizeof self, "%s", av[0]);
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%ld", n);
    const char *extra = getenv("PROTEUS_MPIRUN_ARGS");
    char *extra_copy = extra ? strdup(extra) : NULL;
    int nextra = 0;
    for (char *p = extra_copy; p && *p; p++)
        if (*p != ' ' && (p == extra_copy || p[-1] == ' '))
            nextra++;
    char **nargv = malloc(sizeof(char *) * (size_t)(*argc + nextra + 12));
    if (!nargv) {
        pt_message("--nproc: out of memory");
        return 1;
    }
    int k = 0;
    nargv[k++] = (char *)launcher;
    nargv[k++] = "-np";
    nargv[k++] = nbuf;
    nargv[k++] = "--bind-to";
    nargv[k++] = "none";
    nargv[k++] = "--oversubscribe";
    if (geteuid() == 0)
        nargv[k++] = "--allow-run-as-root";
    for (char *tok = extra_copy ? strtok(extra_copy, " ") : NULL; tok; tok = strtok(NULL, " "))
        nargv[k++] = tok;
    nargv[k++] = self;
    for (int i = 1 + skip; i < *argc; i++)
        nargv[k++] = av[i];
    nargv[k] = NULL;
    fflush(stdout);
    execvp(launcher, nargv);
    fprintf(stderr, "%s: --nproc %ld: cannot run '%s' (%s); install Open MPI (Debian: openmpi-bin) or set "
                    "PROTEUS_MPIRUN to the launcher, or start the ranks yourself: mpirun -np %ld %s ...\n",
            pt_progname, n, launcher, strerror(errno), n, self);
    free(nargv);
    free(extra_copy);
    return 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--nproc") == 0 || strncmp(argv[1], "--nproc=", 8) == 0)) {
        int rc = pt_nproc(&argc, &argv);
        if (rc >= 0)
            return rc;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        pt_message("cannot create the Lua state: not enough memory");
        return 1;
    }
    lua_pushcfunction(L, pt_main);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int code = 1;
    if (status == LUA_OK)
        code = (int)lua_tointeger(L, -1);
    else
        pt_report(L, status);
    /* a failing rank of a multi-process run ends the others now instead of leaving them to the
     * collective watchdog (the error was printed above) */
    if (code != 0 && pt_dist_initialized() && pt_dist_world() > 1)
        pt_dist_abort("proteus: this rank's script failed; ending the other ranks", code);
    lua_close(L);
    return code;
}
