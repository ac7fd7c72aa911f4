/* tests/fuzz/fuzz_sptok.c — libFuzzer target for the SentencePiece .model parser
 * (src/host/pt_sptok.h).
 *
 * Parses the input as a ModelProto; a model that parses gets its BPB byte tables built (for its own
 * vocabulary and a larger model vocabulary) and summed over a token sequence taken from the input,
 * so the tables are read at every index the parser let through.
 *
 *   bash scripts/fuzz.sh sptok 120
 */
#include <stdint.h> /* uint8_t, uint16_t */
#include <string.h> /* memcpy */

#include "pt_sptok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pt_sptok *tok = NULL;
    if (pt_sptok_parse(&tok, data, size, "fuzz.model") != PT_OK)
        return 0;
    (void)pt_sptok_piece_id(tok, "\xe2\x96\x81");
    for (int mv = 0; mv <= 1; mv++) {
        pt_byte_tables *bt = NULL;
        if (pt_byte_tables_build(&bt, tok, mv ? tok->vocab + 7 : 0) != PT_OK)
            continue;
        uint16_t toks[16];
        size_t n = size / 2 < 16 ? size / 2 : 16;
        memcpy(toks, data, n * 2);
        int64_t sum = 0;
        (void)pt_byte_tables_sum(bt, toks, (int64_t)n, "fuzz tokens", &sum);
        pt_byte_tables_free(bt);
    }
    pt_sptok_free(tok);
    return 0;
}
