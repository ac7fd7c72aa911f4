/* shards.c — parameter-golf token shards (format documented field by field in pt_shards.h):
 * mmap reader with validation, atomic writer, sorted shard sets, the baseline training stream with
 * an exact resume position, BOS document splitting and vocabulary checks.
 *
 * Test: ctest --test-dir build -R test_shards   (tests/c/test_shards.c)
 */
#include "pt_shards.h"

#include <errno.h>    /* errno */
#include <fcntl.h>    /* open */
#include <glob.h>     /* glob: shard sets */
#include <stdio.h>    /* snprintf */
#include <stdlib.h>   /* malloc, free */
#include <string.h>   /* strerror, memcpy, strrchr */
#include <sys/mman.h> /* mmap, munmap */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* close, write, fsync, getpid */

/* file name without its folders, for messages */
static const char *pt_base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int32_t pt_read_le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static int pt_host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- reading ---- */

pt_status pt_shard_open(pt_shard **out, const char *path) {
    if (!pt_host_is_little_endian())
        return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: token shards are mapped directly and need a little-endian host",
                       path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PT_FAIL(PT_ERR_IO, "%s: cannot open token shard: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return PT_FAIL(PT_ERR_IO, "%s: cannot stat token shard: %s", path, strerror(e));
    }
    int64_t size = (int64_t)sb.st_size;
    if (size < PT_SHARD_HEADER_BYTES) {
        close(fd);
        return PT_FAIL(PT_ERR_FORMAT,
                       "%s: file is %lld bytes, shorter than the 1024-byte header: truncated or not a "
                       "parameter-golf token shard",
                       path, (long long)size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return PT_FAIL(PT_ERR_IO, "%s: cannot mmap token shard: %s", path, strerror(e));
    const unsigned char *h = map;
    int32_t magic = pt_read_le32(h), version = pt_read_le32(h + 4), ntok = pt_read_le32(h + 8);
    pt_status st = PT_OK;
    if (magic != PT_SHARD_MAGIC)
        st = PT_FAIL(PT_ERR_FORMAT, "%s: bad magic %d (expected %d): not a parameter-golf token shard",
                     pt_base_name(path), magic, PT_SHARD_MAGIC);
    else if (version != PT_SHARD_VERSION)
        st = PT_FAIL(PT_ERR_FORMAT, "%s: unsupported shard version %d (expected %d)", pt_base_name(path),
                     version, PT_SHARD_VERSION);
    else if (ntok < 0)
        st = PT_FAIL(PT_ERR_FORMAT, "%s: negative token count %d in the header", pt_base_name(path), ntok);
    else if (size != PT_SHARD_HEADER_BYTES + 2 * (int64_t)ntok)
        st = PT_FAIL(PT_ERR_FORMAT,
                     "%s: size mismatch: file is %lld bytes but the header says %d tokens (expected "
                     "%lld bytes = 1024 + 2*%d); the file is truncated or corrupt",
                     pt_base_name(path), (long long)size, ntok,
                     (long long)(PT_SHARD_HEADER_BYTES + 2 * (int64_t)ntok), ntok);
    if (st != PT_OK) {
        munmap(map, (size_t)size);
        return st;
    }
    pt_shard *s = calloc(1, sizeof *s);
    char *p = s ? strdup(path) : NULL;
    if (!p) {
        free(s);
        munmap(map, (size_t)size);
        return PT_FAIL(PT_ERR_OOM, "%s: out of memory opening shard", path);
    }
    s->path = p;
    s->map = map;
    s->map_size = (size_t)size;
    s->count = ntok;
    s->tokens = ntok > 0 ? (const uint16_t *)(h + PT_SHARD_HEADER_BYTES) : NULL;
    *out = s;
    return PT_OK;
}

void pt_shard_close(pt_shard *s) {
    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->map_size);
    free(s->path);
    free(s);
}

/* ---- writing ---- */

static pt_status pt_write_all(int fd, const void *buf, size_t n, const char *path) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return PT_FAIL(PT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return PT_OK;
}

pt_status pt_shard_write(const char *path, const uint16_t *tokens, int64_t count) {
    if (count < 0 || count > INT32_MAX)
        return PT_FAIL(PT_ERR_VALUE, "%s: cannot write %lld tokens (0 .. %d per shard)", path,
                       (long long)count, INT32_MAX);
    if (count > 0 && !tokens)
        return PT_FAIL(PT_ERR_VALUE, "%s: no token buffer given for %lld tokens", path, (long long)count);
    if (!pt_host_is_little_endian())
        return PT_FAIL(PT_ERR_UNSUPPORTED, "%s: writing shards needs a little-endian host", path);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp)
        return PT_FAIL(PT_ERR_OOM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        pt_status st = PT_FAIL(PT_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    int32_t header[256] = {0};
    header[0] = PT_SHARD_MAGIC;
    header[1] = PT_SHARD_VERSION;
    header[2] = (int32_t)count;
    pt_status st = pt_write_all(fd, header, sizeof header, path);
    if (st == PT_OK && count > 0)
        st = pt_write_all(fd, tokens, (size_t)count * sizeof(uint16_t), path);
    if (st == PT_OK && fsync(fd) != 0)
        st = PT_FAIL(PT_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && st == PT_OK)
        st = PT_FAIL(PT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (st == PT_OK && rename(tmp, path) != 0)
        st = PT_FAIL(PT_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (st != PT_OK)
        unlink(tmp);
    free(tmp);
    return st;
}

/* ---- vocabulary check ---- */

pt_status pt_tokens_check_vocab(const uint16_t *tokens, int64_t count, int vocab, const char *name) {
    if (vocab <= 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: vocabulary size must be positive, got %d", name, vocab);
    for (int64_t i = 0; i < count; i++)
        if ((int)tokens[i] >= vocab)
            return PT_FAIL(PT_ERR_VALUE, "token %d at position %lld of %s is outside the vocabulary (%d)",
                           (int)tokens[i], (long long)i, name, vocab);
    return PT_OK;
}

pt_status pt_shard_check_vocab(const pt_shard *s, int vocab) {
    return pt_tokens_check_vocab(s->tokens, s->count, vocab, pt_base_name(s->path));
}

/* ---- sets ---- */

pt_status pt_shard_set_open(pt_shard_set **out, const char *pattern) {
    glob_t g;
    memset(&g, 0, sizeof g);
    int rc = glob(pattern, 0, NULL, &g); /* glob sorts its results (no GLOB_NOSORT) */
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        return PT_FAIL(PT_ERR_IO, "no token shards match '%s' (check the data path; the bundled sample is "
                                  "data/sample/fineweb_*_000000.bin)", pattern);
    }
    if (rc != 0) {
        globfree(&g);
        return PT_FAIL(PT_ERR_IO, "cannot list token shards '%s' (glob error %d)", pattern, rc);
    }
    pt_shard_set *set = calloc(1, sizeof *set);
    pt_shard **arr = set ? calloc(g.gl_pathc, sizeof *arr) : NULL;
    if (!arr) {
        free(set);
        globfree(&g);
        return PT_FAIL(PT_ERR_OOM, "out of memory opening %zu shards", (size_t)g.gl_pathc);
    }
    set->shards = arr;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        pt_status st = pt_shard_open(&arr[i], g.gl_pathv[i]);
        if (st != PT_OK) {
            globfree(&g);
            pt_shard_set_close(set);
            return st;
        }
        set->n++;
        set->total += arr[i]->count;
    }
    globfree(&g);
    *out = set;
    return PT_OK;
}

void pt_shard_set_close(pt_shard_set *set) {
    if (!set)
        return;
    for (int i = 0; i < set->n; i++)
        pt_shard_close(set->shards[i]);
    free(set->shards);
    free(set);
}

pt_status pt_shard_set_concat(const pt_shard_set *set, uint16_t **out, int64_t *count) {
    uint16_t *buf = malloc((size_t)(set->total > 0 ? set->total : 1) * sizeof(uint16_t));
    if (!buf)
        return PT_FAIL(PT_ERR_OOM, "out of memory concatenating %lld tokens", (long long)set->total);
    int64_t at = 0;
    for (int i = 0; i < set->n; i++) {
        if (set->shards[i]->count > 0)
            memcpy(buf + at, set->shards[i]->tokens, (size_t)set->shards[i]->count * sizeof(uint16_t));
        at += set->shards[i]->count;
    }
    *out = buf;
    *count = at;
    return PT_OK;
}

/* ---- training stream ---- */

pt_status pt_stream_init(pt_token_stream *st, const pt_shard_set *set) {
    if (!set || set->total <= 0)
        return PT_FAIL(PT_ERR_VALUE, "training stream: the shard set holds no tokens");
    st->set = set;
    st->shard = 0;
    st->offset = 0;
    while (set->shards[st->shard]->count == 0)
        st->shard++;
    return PT_OK;
}

pt_status pt_stream_take(pt_token_stream *st, int64_t n, uint16_t *out) {
    if (n < 0)
        return PT_FAIL(PT_ERR_VALUE, "training stream: cannot take %lld tokens", (long long)n);
    const pt_shard_set *set = st->set;
    int64_t done = 0;
    while (done < n) {
        const pt_shard *s = set->shards[st->shard];
        int64_t avail = s->count - st->offset;
        int64_t k = n - done < avail ? n - done : avail;
        if (k > 0) {
            memcpy(out + done, s->tokens + st->offset, (size_t)k * sizeof(uint16_t));
            done += k;
            st->offset += k;
        }
        if (st->offset >= s->count) { /* next non-empty shard, wrapping */
            st->offset = 0;
            do
                st->shard = (st->shard + 1) % set->n;
            while (set->shards[st->shard]->count == 0);
        }
    }
    return PT_OK;
}

pt_status pt_stream_next_batch(pt_token_stream *st, int64_t n, int rank, int world, uint16_t *out) {
    if (world < 1 || rank < 0 || rank >= world)
        return PT_FAIL(PT_ERR_VALUE, "training stream: rank %d is not in a world of %d", rank, world);
    if (n < 1)
        return PT_FAIL(PT_ERR_VALUE, "training stream: tokens per rank must be >= 1, got %lld", (long long)n);
    int64_t span = n + 1;
    uint16_t *chunk = malloc((size_t)(span * world) * sizeof(uint16_t));
    if (!chunk)
        return PT_FAIL(PT_ERR_OOM, "training stream: out of memory for %lld tokens", (long long)(span * world));
    pt_status s = pt_stream_take(st, span * world, chunk);
    if (s == PT_OK)
        memcpy(out, chunk + (int64_t)rank * span, (size_t)span * sizeof(uint16_t));
    free(chunk);
    return s;
}

void pt_stream_get_pos(const pt_token_stream *st, int *shard, int64_t *offset) {
    *shard = st->shard;
    *offset = st->offset;
}

pt_status pt_stream_set_pos(pt_token_stream *st, int shard, int64_t offset) {
    const pt_shard_set *set = st->set;
    if (shard < 0 || shard >= set->n)
        return PT_FAIL(PT_ERR_INDEX, "training stream: shard index %d is outside the set of %d shards", shard,
                       set->n);
    if (offset < 0 || offset >= set->shards[shard]->count)
        return PT_FAIL(PT_ERR_INDEX, "training stream: offset %lld is outside %s (%lld tokens)",
                       (long long)offset, pt_base_name(set->shards[shard]->path),
                       (long long)set->shards[shard]->count);
    st->shard = shard;
    st->offset = offset;
    return PT_OK;
}

/* ---- documents ---- */

pt_status pt_docs_split(const uint16_t *tokens, int64_t count, int64_t **starts, int64_t **lens,
                        int64_t *ndocs) {
    *starts = NULL;
    *lens = NULL;
    *ndocs = 0;
    int64_t nb = 0;
    for (int64_t i = 0; i < count; i++)
        nb += tokens[i] == PT_SHARD_BOS;
    if (nb == 0)
        return PT_OK;
    int64_t *s = malloc((size_t)nb * sizeof *s), *l = malloc((size_t)nb * sizeof *l);
    if (!s || !l) {
        free(s);
        free(l);
        return PT_FAIL(PT_ERR_OOM, "documents: out of memory for %lld documents", (long long)nb);
    }
    int64_t k = 0, prev = -1;
    for (int64_t i = 0; i <= count; i++) {
        if (i < count && tokens[i] != PT_SHARD_BOS)
            continue;
        if (prev >= 0) {
            int64_t len = i < count ? i - prev + 1 : count - prev; /* inclusive of the next BOS */
            if (len >= 2) {
                s[k] = prev;
                l[k] = len;
                k++;
            }
        }
        prev = i;
    }
    if (k == 0) {
        free(s);
        free(l);
        return PT_OK;
    }
    *starts = s;
    *lens = l;
    *ndocs = k;
    return PT_OK;
}
