/* fileio.c — whole-file reads with a size limit and atomic whole-file writes (see pt_fileio.h).
 *
 * Atomic write, step by step:
 *   1. open "PATH.tmp.<pid>" (O_CREAT|O_TRUNC, mode 0644 minus umask),
 *   2. write every chunk (retrying short writes and EINTR), fsync, close,
 *   3. rename over PATH (atomic on POSIX file systems),
 *   4. fsync the directory that holds PATH so the rename itself is durable.
 * Any failure removes the temporary and leaves PATH as it was.
 *
 * Test: tests/c/test_codec.c (fileio_*), run by ctest.
 */
#include "pt_fileio.h"

#include <errno.h>     /* errno, EINTR */
#include <fcntl.h>     /* open, O_* */
#include <stdio.h>     /* snprintf, rename */
#include <stdlib.h>    /* malloc, realloc, free */
#include <string.h>    /* strerror, strlen, memcpy, strrchr */
#include <sys/stat.h>  /* fstat, S_ISREG */
#include <unistd.h>    /* write, read, fsync, close, getpid, unlink */

static pt_status pt_write_all(int fd, const void *data, size_t len, const char *tmp) {
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return PT_FAIL(PT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        }
        p += k;
        len -= (size_t)k;
    }
    return PT_OK;
}

/* fsync the directory holding path ("." when path has no slash). */
static pt_status pt_fsync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return PT_FAIL(PT_ERR_IO, "path too long: %s", path);
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PT_FAIL(PT_ERR_IO, "cannot open directory %s to sync it: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* some file systems refuse fsync on directories (EINVAL); the rename has happened anyway */
    if (rc != 0 && err != EINVAL)
        return PT_FAIL(PT_ERR_IO, "cannot sync directory %s: %s", dir, strerror(err));
    return PT_OK;
}

pt_status pt_file_write_atomic(const char *path, const pt_chunk *chunks, int n) {
    if (!path || !*path)
        return PT_FAIL(PT_ERR_VALUE, "write: empty file name");
    if (n < 0 || (n > 0 && !chunks))
        return PT_FAIL(PT_ERR_VALUE, "write %s: bad chunk list (n=%d)", path, n);
    char tmp[4200];
    int tl = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (tl < 0 || (size_t)tl >= sizeof tmp)
        return PT_FAIL(PT_ERR_IO, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return PT_FAIL(PT_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    pt_status s = PT_OK;
    for (int i = 0; i < n && s == PT_OK; i++) {
        if (chunks[i].len > 0 && !chunks[i].data)
            s = PT_FAIL(PT_ERR_VALUE, "write %s: chunk %d has no data", path, i);
        else
            s = pt_write_all(fd, chunks[i].data, chunks[i].len, tmp);
    }
    if (s == PT_OK && fsync(fd) != 0)
        s = PT_FAIL(PT_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == PT_OK)
        s = PT_FAIL(PT_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (s == PT_OK && rename(tmp, path) != 0)
        s = PT_FAIL(PT_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (s != PT_OK) {
        unlink(tmp);
        return s;
    }
    return pt_fsync_parent_dir(path);
}

pt_status pt_file_size(const char *path, uint64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0)
        return PT_FAIL(PT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return PT_FAIL(PT_ERR_IO, "%s is not a regular file", path);
    *size = (uint64_t)st.st_size;
    return PT_OK;
}

pt_status pt_file_read_all(const char *path, uint8_t **buf, size_t *len, size_t max_len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PT_FAIL(PT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return PT_FAIL(PT_ERR_IO, "cannot stat %s: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return PT_FAIL(PT_ERR_IO, "cannot read %s: it is a directory", path);
    }
    /* regular files: size known up front; pipes and devices: read in pieces, up to max_len */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : 65536;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_len) {
        close(fd);
        return PT_FAIL(PT_ERR_FORMAT, "%s is %lld bytes, more than the limit of %zu bytes", path,
                       (long long)st.st_size, max_len);
    }
    if (cap > max_len)
        cap = max_len;
    uint8_t *b = malloc(cap + 1);
    if (!b) {
        close(fd);
        return PT_FAIL(PT_ERR_OOM, "cannot allocate %zu bytes to read %s", cap + 1, path);
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (S_ISREG(st.st_mode)) {
                /* the file grew while we read it: probe one byte to tell */
                uint8_t probe;
                ssize_t k = read(fd, &probe, 1);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k == 0)
                    break;
                free(b);
                close(fd);
                return PT_FAIL(PT_ERR_IO, "%s changed size while it was being read", path);
            }
            if (cap == max_len) {
                uint8_t probe;
                ssize_t k = read(fd, &probe, 1);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k == 0)
                    break;
                free(b);
                close(fd);
                return PT_FAIL(PT_ERR_FORMAT, "%s is more than the limit of %zu bytes", path, max_len);
            }
            size_t ncap = cap * 2 > max_len || cap * 2 < cap ? max_len : cap * 2;
            uint8_t *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                close(fd);
                return PT_FAIL(PT_ERR_OOM, "cannot allocate %zu bytes to read %s", ncap + 1, path);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free(b);
            close(fd);
            return PT_FAIL(PT_ERR_IO, "cannot read %s: %s", path, strerror(err));
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (S_ISREG(st.st_mode) && n != (size_t)st.st_size) {
        free(b);
        return PT_FAIL(PT_ERR_IO, "%s changed size while it was being read (%zu of %lld bytes)", path,
                       n, (long long)st.st_size);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return PT_OK;
}
