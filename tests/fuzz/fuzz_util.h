/* tests/fuzz/fuzz_util.h — helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * pt_fuzz_memfile writes the input to an anonymous in-memory file (memfd_create) and returns a path
 * to it (/proc/self/fd/N), for the parsers whose only API takes a path (token shards, the file
 * paths of the safetensors and SentencePiece readers). Build and run: scripts/fuzz.sh.
 */
#ifndef PT_FUZZ_UTIL_H
#define PT_FUZZ_UTIL_H

#include <stddef.h>   /* size_t */
#include <stdint.h>   /* uint8_t */
#include <stdio.h>    /* snprintf */
#include <sys/mman.h> /* memfd_create */
#include <unistd.h>   /* write, close */

/* Returns the fd (>= 0) and fills path, or -1 when the memfd cannot be made. */
static inline int pt_fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("pt_fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
