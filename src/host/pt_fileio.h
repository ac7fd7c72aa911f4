/* pt_fileio.h — whole-file reads with a size limit and crash-safe (atomic) whole-file writes.
 *
 * Every file proteus writes that a run cannot afford to lose (artifacts, checkpoints, safetensors,
 * results.json) goes through pt_file_write_atomic: the bytes go to "PATH.tmp.<pid>", are fsynced,
 * the temporary is renamed over PATH and the directory is fsynced. A crash (kill -9, power loss) at
 * any moment leaves either the previous PATH or the new one, never a torn file.
 *
 * Reads check the file size against the caller's limit BEFORE allocating, so a hostile or mistaken
 * file cannot make proteus allocate more than the caller allows.
 *
 * Tested by tests/c/test_codec.c (fileio_* tests).
 */
#ifndef PT_FILEIO_H
#define PT_FILEIO_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint8_t, uint64_t */

#include "pt_status.h"

/* One piece of the bytes to write; a file is the concatenation of its chunks. */
typedef struct {
    const void *data;
    size_t len;
} pt_chunk;

/* Writes the concatenation of chunks[0..n) to path atomically (see the top of this file).
 * On failure the temporary file is removed and path is untouched. */
pt_status pt_file_write_atomic(const char *path, const pt_chunk *chunks, int n);

/* Reads the whole of path into a new malloc'ed buffer (*buf, freed by the caller with free()), with
 * one extra NUL byte after the *len bytes so text can be parsed in place. Fails with PT_ERR_IO
 * ("cannot open PATH: No such file or directory") or PT_ERR_FORMAT when the file is larger than
 * max_len (checked before allocating). */
pt_status pt_file_read_all(const char *path, uint8_t **buf, size_t *len, size_t max_len);

/* Size in bytes of a regular file. */
pt_status pt_file_size(const char *path, uint64_t *size);

#endif
