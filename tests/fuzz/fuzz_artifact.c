/* tests/fuzz/fuzz_artifact.c — libFuzzer target for the PTZ1 artifact loader
 * (src/host/pt_artifact.h).
 *
 * pt_artifact_unpack on the raw input; an artifact that loads has every entry re-checked and its
 * int6-packed values unpacked, as the Lua loader does, and every data/scale byte read.
 * The CRC check makes random edits of a whole file fail early, so there are two modes:
 *   input starting with "PTZ1"   a whole file image, unpacked as is (header, codecs, CRC, JSON);
 *   any other input              a decoded payload (u64 JSON length, JSON, data region): the target
 *                                wraps it in a valid codec-"none" header with the right CRC, so the
 *                                fuzzer explores the JSON and the per-tensor checks.
 * Seeds (tests/fuzz/corpus/artifact): files with every codec, and bare payloads ("payload_*").
 *
 *   bash scripts/fuzz.sh artifact 120
 */
#include <stdint.h> /* uint8_t */
#include <stdlib.h> /* malloc, free */

#include <string.h> /* memcmp, memcpy */

#include <zlib.h> /* crc32_z */

#include "pt_artifact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pt_artifact a;
    pt_status s;
    if (size >= 4 && memcmp(data, "PTZ1", 4) == 0) {
        s = pt_artifact_unpack(data, size, "fuzz.ptz", &a);
    } else {
        uint8_t *file = malloc(PT_ARTIFACT_HEADER_BYTES + size + 1);
        if (!file)
            return 0;
        memset(file, 0, PT_ARTIFACT_HEADER_BYTES);
        memcpy(file, "PTZ1", 4);
        file[4] = 1; /* version */
        uint32_t crc = (uint32_t)crc32_z(0L, data, size);
        for (int i = 0; i < 8; i++) {
            file[12 + i] = (uint8_t)((uint64_t)size >> (8 * i)); /* P */
            file[20 + i] = (uint8_t)((uint64_t)size >> (8 * i)); /* S */
        }
        for (int i = 0; i < 4; i++)
            file[28 + i] = (uint8_t)(crc >> (8 * i));
        if (size)
            memcpy(file + PT_ARTIFACT_HEADER_BYTES, data, size);
        s = pt_artifact_unpack(file, PT_ARTIFACT_HEADER_BYTES + size, "fuzz-payload.ptz", &a);
        free(file);
    }
    if (s != PT_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < a.n; i++) {
        const pt_artifact_entry *e = &a.entries[i];
        (void)pt_artifact_entry_check(e, "fuzz entry");
        (void)pt_artifact_find(&a, e->name);
        const uint8_t *d = e->data, *sc = e->scales;
        for (size_t k = 0; k < e->data_len; k++)
            sink ^= d[k];
        for (size_t k = 0; k < e->scales_len; k++)
            sink ^= sc[k];
        if (e->packed6) {
            int64_t numel = 1;
            for (int k = 0; k < e->ndim; k++)
                numel *= e->shape[k];
            int8_t *v = malloc((size_t)numel + 1);
            if (v) {
                (void)pt_int6_unpack(e->data, e->data_len, (size_t)numel, v);
                free(v);
            }
        }
    }
    (void)sink;
    pt_artifact_free(&a);
    return 0;
}
