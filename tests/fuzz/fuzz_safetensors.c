/* tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader
 * (src/host/pt_safetensors.h).
 *
 * Both readers see every input: pt_safetensors_parse (bytes in memory) and pt_safetensors_load
 * (the file reader, which preads each tensor: a different code path), and they must agree on
 * whether the input is valid. A file that loads is serialized again and re-parsed (round trip).
 *
 *   bash scripts/fuzz.sh safetensors 120
 */
#include <stdint.h> /* uint8_t */
#include <stdlib.h> /* abort, free */
#include <unistd.h> /* close */

#include "fuzz_util.h"
#include "pt_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pt_st_list a = {0};
    pt_status sa = pt_safetensors_parse(data, size, "fuzz", &a);
    char path[64];
    int fd = pt_fuzz_memfile(data, size, path, sizeof path);
    if (fd >= 0) {
        pt_st_list b = {0};
        pt_status sb = pt_safetensors_load(path, &b);
        if ((sa == PT_OK) != (sb == PT_OK))
            abort(); /* the two readers disagree about the same bytes */
        if (sb == PT_OK && b.n != a.n)
            abort();
        pt_st_list_free(&b);
        close(fd);
    }
    if (sa == PT_OK) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (pt_safetensors_serialize(&a, &buf, &len) == PT_OK) {
            pt_st_list c = {0};
            if (pt_safetensors_parse(buf, len, "fuzz round trip", &c) != PT_OK || c.n != a.n)
                abort(); /* what we wrote we must read back */
            pt_st_list_free(&c);
            free(buf);
        }
    }
    pt_st_list_free(&a);
    return 0;
}
