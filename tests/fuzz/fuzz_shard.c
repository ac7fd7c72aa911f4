/* tests/fuzz/fuzz_shard.c — libFuzzer target for the token shard reader (src/host/pt_shards.h).
 *
 * The input is written to an in-memory file and opened with pt_shard_open; a shard that opens is
 * then checked against the sp1024 vocabulary, split into documents and read through the training
 * stream, so every token the header claims is touched.
 *
 *   bash scripts/fuzz.sh shard 120      # build-fuzz/fuzz_shard over tests/fuzz/corpus/shard
 */
#include <stdint.h> /* uint8_t */
#include <stdlib.h> /* free */
#include <unistd.h> /* close */

#include "fuzz_util.h"
#include "pt_shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = pt_fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    pt_shard *s = NULL;
    if (pt_shard_open(&s, path) == PT_OK) {
        (void)pt_shard_check_vocab(s, 1024);
        int64_t *starts = NULL, *lens = NULL, nd = 0;
        if (pt_docs_split(s->tokens, s->count, &starts, &lens, &nd) == PT_OK) {
            free(starts);
            free(lens);
        }
        pt_shard_set set = {.n = 1, .shards = &s, .total = s->count};
        pt_token_stream st;
        if (pt_stream_init(&st, &set) == PT_OK) {
            uint16_t buf[65];
            (void)pt_stream_next_batch(&st, 32, 1, 2, buf);
            (void)pt_stream_take(&st, 17, buf);
        }
        pt_shard_close(s);
    }
    close(fd);
    return 0;
}
