/* repl.c — the proteus REPL (see pt_host.h), in the manner of lua.c's doREPL:
 *
 *   * each input is first compiled as `return <line>` (so `1+2` prints 3), else as a statement;
 *   * a syntax error ending in "<eof>" means the chunk is incomplete: read more lines with _PROMPT2;
 *   * results are printed with the global print (tensors through their __tostring);
 *   * errors print "proteus: msg" + traceback to stderr and the REPL goes on;
 *   * Ctrl-C while a chunk runs raises "interrupted!" (pt_host_docall) and returns to the prompt;
 *     Ctrl-C at the prompt drops the line being typed;
 *   * on a terminal lines are read with libedit (BSD line editor; GNU readline is never linked):
 *     history in $PROTEUS_HISTORY or ~/.proteus_history, Tab completes table fields through
 *     complete() of lua/lib/proteus/repl.lua (`pt.ze<TAB>`, `t:sh<TAB>` via the metatable __index);
 *   * when stdin is not a terminal, plain lines are read and no prompt is printed (tests pipe input:
 *     `printf '1+2\n' | build/proteus -i`).
 *
 * The REPL installs the helpers of lua/lib/proteus/repl.lua (reload, help) as globals.
 * Tested by tests/cli/test_repl_tmux.sh (a real terminal under tmux) and tests/cli/test_cli.sh.
 */
#include "pt_host.h"

#include <errno.h>    /* errno, EINTR */
#include <lauxlib.h>  /* luaL_loadbuffer, luaL_Buffer */
#include <locale.h>   /* setlocale: libedit needs LC_CTYPE for non-ASCII input */
#include <poll.h>     /* ppoll */
#include <signal.h>   /* sigaction, sigprocmask, sigpending */
#include <stdio.h>    /* getline, fputs */
#include <stdlib.h>   /* malloc, free, getenv */
#include <string.h>   /* strlen, strcmp */
#include <unistd.h>   /* isatty, read */

#include <editline/readline.h> /* readline, add_history, rl_* (libedit's readline compatibility) */

#define PT_REPL_PROMPT "> "
#define PT_REPL_PROMPT2 ">> "
#define PT_REPL_HISTORY_MAX 1000
#define PT_REPL_COMPLETE_KEY "proteus.repl.complete" /* registry slot of repl.lua's complete() */

static lua_State *pt_repl_L;     /* the state, for the completion callback */
static const char *pt_repl_prog; /* "proteus", prefix of error messages */
static int pt_repl_tty;          /* 1: stdin is a terminal, use libedit */
static char pt_repl_histfile[4096];
static volatile sig_atomic_t pt_repl_prompt_int; /* Ctrl-C at the prompt */

static void pt_repl_message(const char *msg) {
    fprintf(stderr, "%s: %s\n", pt_repl_prog, msg);
    fflush(stderr);
}

/* ---- reading a line ---- */

static void pt_repl_prompt_sigint(int sig) {
    (void)sig;
    pt_repl_prompt_int = 1;
}

/* Waits until a key can be read. Returns 1 when one can, 0 when a Ctrl-C came first (the
 * handler has then set pt_repl_prompt_int), -1 on an error. SIGINT is blocked except inside
 * ppoll, and a pending one is looked for before the key is taken: the terminal raises SIGINT
 * when it receives ^C, before the keys typed after it arrive, so a key typed after Ctrl-C always
 * starts the next line (a plain read() would return such a key with the signal still pending
 * when the process is slow to run, and the key would be dropped with the interrupted line). */
static int pt_repl_wait_key(int fd) {
    sigset_t intr, orig, pending;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    sigprocmask(SIG_BLOCK, &intr, &orig);
    int r;
    for (;;) {
        sigpending(&pending);
        if (pt_repl_prompt_int || sigismember(&pending, SIGINT)) {
            r = 0;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int n = ppoll(&p, 1, NULL, &orig); /* SIGINT can arrive only while waiting here */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -1;
            break;
        }
        sigpending(&pending);
        r = sigismember(&pending, SIGINT) ? 0 : 1;
        break;
    }
    sigprocmask(SIG_SETMASK, &orig, NULL); /* a pending SIGINT runs the handler here */
    return r;
}

/* libedit input function: one character per call, decoded from UTF-8 when the locale is
 * multibyte. A Ctrl-C ends the line with '\n'; the REPL then sees pt_repl_prompt_int and drops
 * it. */
static int pt_repl_getc(FILE *f) {
    int fd = fileno(f);
    unsigned char b[4];
    for (;;) {
        int w = pt_repl_wait_key(fd);
        if (w == 0)
            return '\n';
        if (w < 0)
            return EOF;
        ssize_t n = read(fd, b, 1);
        if (n == 1)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        return EOF;
    }
    int len = 1, cp = b[0];
    if (MB_CUR_MAX > 1 && b[0] >= 0xC0 && b[0] < 0xF8) {
        len = b[0] >= 0xF0 ? 4 : b[0] >= 0xE0 ? 3 : 2;
        cp = b[0] & (0x3F >> (len - 1));
        for (int i = 1; i < len; i++) {
            if (read(fd, b + i, 1) != 1 || (b[i] & 0xC0) != 0x80)
                return '?'; /* malformed UTF-8 */
            cp = (cp << 6) | (b[i] & 0x3F);
        }
    }
    return cp;
}

/* Reads one line without its newline into a malloc'd string; NULL at end of input. */
static char *pt_repl_readline(const char *prompt) {
    if (!pt_repl_tty) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            free(line);
            return NULL;
        }
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
        return line;
    }
    struct sigaction sa, old;
    sa.sa_handler = pt_repl_prompt_sigint;
    sa.sa_flags = 0; /* no SA_RESTART: read() in pt_repl_getc returns EINTR */
    sigemptyset(&sa.sa_mask);
    pt_repl_prompt_int = 0;
    sigaction(SIGINT, &sa, &old);
    char *line = readline(prompt);
    sigaction(SIGINT, &old, NULL);
    return line;
}

static const char *pt_repl_get_prompt(lua_State *L, int first) {
    lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
    const char *p = lua_tostring(L, -1);
    if (!p)
        p = first ? PT_REPL_PROMPT : PT_REPL_PROMPT2;
    lua_pop(L, 1); /* the string stays alive: it is a global (or a literal) */
    return p;
}

static void pt_repl_save_history(const char *chunk) {
    if (!pt_repl_tty || !chunk[0])
        return;
    add_history(chunk);
    if (pt_repl_histfile[0])
        write_history(pt_repl_histfile);
}

/* ---- compiling a chunk ---- */

static int pt_repl_incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX)
        return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    const char *eof = "<eof>";
    size_t elen = strlen(eof);
    return msg && len >= elen && strcmp(msg + len - elen, eof) == 0;
}

enum { PT_REPL_EOF = -1, PT_REPL_SKIP = -2 };

/* Reads and compiles one chunk. Returns a lua status with the function (or the error message)
 * pushed, or PT_REPL_EOF / PT_REPL_SKIP (Ctrl-C at the prompt) with nothing pushed. */
static int pt_repl_loadchunk(lua_State *L) {
    char *line = pt_repl_readline(pt_repl_get_prompt(L, 1));
    if (!line)
        return PT_REPL_EOF;
    if (pt_repl_prompt_int) {
        free(line);
        return PT_REPL_SKIP;
    }
    /* expression first */
    const char *ret = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
    lua_remove(L, -2);
    if (status == LUA_OK) {
        pt_repl_save_history(line);
        free(line);
        return status;
    }
    lua_pop(L, 1);
    /* a statement, continued while incomplete */
    lua_pushstring(L, line); /* the chunk so far */
    free(line);
    for (;;) {
        size_t len;
        const char *chunk = lua_tolstring(L, -1, &len);
        status = luaL_loadbuffer(L, chunk, len, "=stdin");
        if (!pt_repl_incomplete(L, status))
            break;
        lua_pop(L, 1);
        line = pt_repl_readline(pt_repl_get_prompt(L, 0));
        if (!line) { /* end of input inside a chunk: report the syntax error */
            status = luaL_loadbuffer(L, chunk, len, "=stdin");
            break;
        }
        if (pt_repl_prompt_int) {
            free(line);
            lua_pop(L, 1);
            return PT_REPL_SKIP;
        }
        lua_pushfstring(L, "%s\n%s", chunk, line);
        lua_remove(L, -2); /* the shorter chunk */
        free(line);
    }
    pt_repl_save_history(lua_tostring(L, -2));
    lua_remove(L, -2); /* the chunk text */
    return status;
}

/* ---- completion ---- */

static char **pt_repl_matches;
static int pt_repl_nmatches;

static char *pt_repl_gen(const char *text, int state) {
    (void)text;
    static int next;
    if (state == 0)
        next = 0;
    if (next < pt_repl_nmatches) {
        char *m = pt_repl_matches[next];
        pt_repl_matches[next++] = NULL; /* ownership passes to libedit */
        return m;
    }
    return NULL;
}

static void pt_repl_free_matches(void) {
    for (int i = 0; i < pt_repl_nmatches; i++)
        free(pt_repl_matches[i]);
    free(pt_repl_matches);
    pt_repl_matches = NULL;
    pt_repl_nmatches = 0;
}

static char **pt_repl_complete(const char *text, int start, int end) {
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    lua_State *L = pt_repl_L;
    pt_repl_free_matches();
    int top = lua_gettop(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, PT_REPL_COMPLETE_KEY) != LUA_TFUNCTION) {
        lua_settop(L, top);
        return NULL;
    }
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_settop(L, top);
        return NULL;
    }
    int n = (int)luaL_len(L, -1);
    pt_repl_matches = n > 0 ? calloc((size_t)n, sizeof *pt_repl_matches) : NULL;
    for (int i = 0; pt_repl_matches && i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        const char *s = lua_tostring(L, -1);
        if (s) {
            size_t len = strlen(s);
            char *copy = malloc(len + 1);
            if (copy) {
                memcpy(copy, s, len + 1);
                pt_repl_matches[pt_repl_nmatches++] = copy;
            }
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    if (pt_repl_nmatches == 0)
        return NULL;
    return rl_completion_matches(text, pt_repl_gen);
}

/* ---- the loop ---- */

/* require("proteus.repl").install(_G); keeps complete() for Tab. A failure is reported, the REPL
 * still runs without the helpers. */
static void pt_repl_install_helpers(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "proteus.repl");
    if (pt_host_docall(L, 1, 1) != LUA_OK) {
        fprintf(stderr, "%s: warning: REPL helpers (reload, help, Tab) unavailable: %s\n",
                pt_repl_prog, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "complete");
        lua_setfield(L, LUA_REGISTRYINDEX, PT_REPL_COMPLETE_KEY);
        lua_getfield(L, -1, "install");
        if (lua_isfunction(L, -1)) {
            lua_pushglobaltable(L);
            if (pt_host_docall(L, 1, 0) != LUA_OK) {
                pt_repl_message(lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static void pt_repl_init_editline(void) {
    static char word_break[] = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#";
    setlocale(LC_CTYPE, "");
    rl_readline_name = "proteus"; /* ~/.editrc sections */
    rl_catch_signals = 0;         /* Ctrl-C is ours (pt_repl_readline) */
    rl_getc_function = pt_repl_getc;
    rl_attempted_completion_function = pt_repl_complete;
    rl_basic_word_break_characters = word_break; /* '.' and ':' stay inside the word */
    rl_completer_word_break_characters = word_break;
    rl_completion_append_character = '\0';
    const char *hist = getenv("PROTEUS_HISTORY");
    const char *home = getenv("HOME");
    if (hist && *hist)
        snprintf(pt_repl_histfile, sizeof pt_repl_histfile, "%s", hist);
    else if (home && *home)
        snprintf(pt_repl_histfile, sizeof pt_repl_histfile, "%s/.proteus_history", home);
    using_history();
    stifle_history(PT_REPL_HISTORY_MAX);
    if (pt_repl_histfile[0])
        read_history(pt_repl_histfile);
}

void pt_repl_run(lua_State *L, const char *progname) {
    pt_repl_L = L;
    pt_repl_prog = progname ? progname : "proteus";
    pt_repl_tty = isatty(0);
    pt_repl_install_helpers(L);
    if (pt_repl_tty)
        pt_repl_init_editline();
    for (;;) {
        lua_settop(L, 0);
        pt_host_clear_interrupt();
        int status = pt_repl_loadchunk(L);
        if (status == PT_REPL_EOF)
            break;
        if (status == PT_REPL_SKIP)
            continue; /* Ctrl-C at the prompt: a fresh prompt */
        if (status == LUA_OK)
            status = pt_host_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) {
            int n = lua_gettop(L);
            if (n > 0) { /* print the results with the global print */
                luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
                lua_getglobal(L, "print");
                lua_insert(L, 1);
                if (lua_pcall(L, n, 0, 0) != LUA_OK)
                    pt_repl_message(lua_pushfstring(L, "error calling 'print' (%s)",
                                                    lua_tostring(L, -1)));
            }
        } else {
            const char *msg = lua_tostring(L, -1);
            pt_repl_message(msg ? msg : "(error object is not a string)");
        }
        fflush(stdout);
    }
    lua_settop(L, 0);
    pt_repl_free_matches();
    if (pt_repl_tty) {
        fputs("\n", stdout);
        fflush(stdout);
    }
}
