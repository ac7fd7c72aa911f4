/* test_shards.c — token shards: round trip, refusal of bad files (the message names the file and the
 * values), shard sets, the training stream (wrap-around, rank slices, exact resume), BOS document
 * splitting and vocabulary checks.
 *
 * Run: ctest --test-dir build -R test_shards   (or build/test_shards from the repository root)
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_shards.h"
#include "pt_test.h"

static char pt_dir[64];

static const char *tmp_dir(void) {
    if (!pt_dir[0]) {
        strcpy(pt_dir, "/tmp/pt_test_shards_XXXXXX");
        if (!mkdtemp(pt_dir))
            pt_dir[0] = 0;
    }
    return pt_dir;
}

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir(), name);
    return buf[k];
}

/* writes raw bytes: a header with the given fields, then nbody bytes of tokens */
static void write_raw(const char *path, int32_t magic, int32_t version, int32_t count, size_t nbody,
                      size_t header_bytes) {
    FILE *f = fopen(path, "wb");
    int32_t h[256] = {0};
    h[0] = magic;
    h[1] = version;
    h[2] = count;
    fwrite(h, 1, header_bytes, f);
    for (size_t i = 0; i < nbody; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
}

PT_TEST(shard_round_trip) {
    uint16_t toks[1000];
    for (int i = 0; i < 1000; i++)
        toks[i] = (uint16_t)(i * 37 % 65535);
    const char *p = tmp_path("rt.bin");
    PT_CHECK_OK(pt_shard_write(p, toks, 1000));
    pt_shard *s = NULL;
    PT_CHECK_OK(pt_shard_open(&s, p));
    PT_CHECK(s && s->count == 1000);
    PT_CHECK(s && memcmp(s->tokens, toks, sizeof toks) == 0);
    pt_shard_close(s);
    /* the header on disk is the challenge's: magic, version, count little-endian */
    FILE *f = fopen(p, "rb");
    unsigned char h[12];
    PT_CHECK(fread(h, 1, 12, f) == 12);
    fseek(f, 0, SEEK_END);
    PT_CHECK(ftell(f) == 1024 + 2000);
    fclose(f);
    PT_CHECK(h[0] == 0x88 && h[1] == 0xd8 && h[2] == 0x34 && h[3] == 0x01); /* 20240520 = 0x0134D888 */
    PT_CHECK(h[4] == 1 && h[8] == 0xe8 && h[9] == 0x03);                   /* 1, 1000 */
    /* no temp file left behind */
    PT_CHECK(access(tmp_path("rt.bin.tmp"), F_OK) != 0);
    /* zero tokens is a valid (empty) shard */
    PT_CHECK_OK(pt_shard_write(tmp_path("empty_ok.bin"), NULL, 0));
    PT_CHECK_OK(pt_shard_open(&s, tmp_path("empty_ok.bin")));
    PT_CHECK(s->count == 0 && s->tokens == NULL);
    pt_shard_close(s);
}

PT_TEST(shard_rejects_bad_files) {
    pt_shard *s = NULL;
    const char *p = tmp_path("fineweb_val_000000.bin");
    write_raw(p, 12345, 1, 10, 20, 1024);
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT,
                 "fineweb_val_000000.bin: bad magic 12345 (expected 20240520): not a parameter-golf token shard");
    write_raw(p, 20240520, 2, 10, 20, 1024);
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "fineweb_val_000000.bin: unsupported shard version 2 (expected 1)");
    write_raw(p, 20240520, 1, 10, 19, 1024); /* truncated body */
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "fineweb_val_000000.bin: size mismatch: file is 1043 bytes");
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "header says 10 tokens (expected 1044 bytes");
    write_raw(p, 20240520, 1, 10, 22, 1024); /* trailing bytes */
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "file is 1046 bytes but the header says 10 tokens");
    write_raw(p, 20240520, 1, 10, 0, 100); /* truncated header */
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "fineweb_val_000000.bin: file is 100 bytes, shorter than the 1024-byte header");
    write_raw(p, 0, 0, 0, 0, 0); /* empty file */
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "file is 0 bytes");
    write_raw(p, 20240520, 1, -5, 0, 1024);
    PT_CHECK_ERR(pt_shard_open(&s, p), PT_ERR_FORMAT, "negative token count -5");
    PT_CHECK_ERR(pt_shard_open(&s, tmp_path("missing.bin")), PT_ERR_IO, "missing.bin: cannot open token shard");
    PT_CHECK(s == NULL);
}

PT_TEST(shard_vocab_check) {
    uint16_t toks[100];
    for (int i = 0; i < 100; i++)
        toks[i] = (uint16_t)(i % 50);
    toks[77] = 1500;
    const char *p = tmp_path("fineweb_train_000009.bin");
    PT_CHECK_OK(pt_shard_write(p, toks, 100));
    pt_shard *s = NULL;
    PT_CHECK_OK(pt_shard_open(&s, p));
    PT_CHECK_ERR(pt_shard_check_vocab(s, 1024), PT_ERR_VALUE,
                 "token 1500 at position 77 of fineweb_train_000009.bin is outside the vocabulary (1024)");
    PT_CHECK_OK(pt_shard_check_vocab(s, 8192));
    pt_shard_close(s);
}

/* three shards "a_0" (5 tokens), "a_1" (0 tokens), "a_2" (3 tokens), written out of order */
static pt_shard_set *make_set(void) {
    uint16_t a[5] = {10, 11, 12, 13, 14}, c[3] = {20, 21, 22};
    pt_shard_write(tmp_path("set_2.bin"), c, 3);
    pt_shard_write(tmp_path("set_0.bin"), a, 5);
    pt_shard_write(tmp_path("set_1.bin"), NULL, 0);
    pt_shard_set *set = NULL;
    PT_CHECK_OK(pt_shard_set_open(&set, tmp_path("set_*.bin")));
    return set;
}

PT_TEST(shard_set_sorted_and_concat) {
    pt_shard_set *set = make_set();
    PT_CHECK(set && set->n == 3 && set->total == 8);
    PT_CHECK(strstr(set->shards[0]->path, "set_0.bin") && strstr(set->shards[2]->path, "set_2.bin"));
    uint16_t *all = NULL;
    int64_t n = 0;
    PT_CHECK_OK(pt_shard_set_concat(set, &all, &n));
    uint16_t want[8] = {10, 11, 12, 13, 14, 20, 21, 22};
    PT_CHECK(n == 8 && memcmp(all, want, sizeof want) == 0);
    free(all);
    pt_shard_set_close(set);
    PT_CHECK_ERR(pt_shard_set_open(&set, tmp_path("nothing_*.bin")), PT_ERR_IO, "no token shards match");
}

PT_TEST(stream_wraps_and_resumes) {
    pt_shard_set *set = make_set();
    pt_token_stream st;
    PT_CHECK_OK(pt_stream_init(&st, set));
    uint16_t out[16];
    PT_CHECK_OK(pt_stream_take(&st, 7, out)); /* spans the empty shard */
    uint16_t w1[7] = {10, 11, 12, 13, 14, 20, 21};
    PT_CHECK(memcmp(out, w1, sizeof w1) == 0);
    int sh;
    int64_t off;
    pt_stream_get_pos(&st, &sh, &off);
    PT_CHECK(sh == 2 && off == 2);
    PT_CHECK_OK(pt_stream_take(&st, 4, out)); /* wraps */
    uint16_t w2[4] = {22, 10, 11, 12};
    PT_CHECK(memcmp(out, w2, sizeof w2) == 0);
    pt_stream_get_pos(&st, &sh, &off);
    PT_CHECK(sh == 0 && off == 3);
    /* exact resume: a fresh stream restored to the saved position continues identically */
    uint16_t a[10], b[10];
    PT_CHECK_OK(pt_stream_take(&st, 10, a));
    pt_token_stream st2;
    PT_CHECK_OK(pt_stream_init(&st2, set));
    PT_CHECK_OK(pt_stream_set_pos(&st2, 0, 3));
    PT_CHECK_OK(pt_stream_take(&st2, 10, b));
    PT_CHECK(memcmp(a, b, sizeof a) == 0);
    PT_CHECK_ERR(pt_stream_set_pos(&st2, 3, 0), PT_ERR_INDEX, "shard index 3 is outside the set of 3 shards");
    PT_CHECK_ERR(pt_stream_set_pos(&st2, 2, 3), PT_ERR_INDEX, "offset 3 is outside set_2.bin (3 tokens)");
    pt_shard_set_close(set);
}

PT_TEST(stream_rank_slices) {
    pt_shard_set *set = make_set();
    /* W=2 ranks, n=2 tokens each: one micro-step takes 2*(2+1)=6 tokens; rank r gets [3r, 3r+3) */
    pt_token_stream s0, s1;
    PT_CHECK_OK(pt_stream_init(&s0, set));
    PT_CHECK_OK(pt_stream_init(&s1, set));
    uint16_t r0[3], r1[3];
    PT_CHECK_OK(pt_stream_next_batch(&s0, 2, 0, 2, r0));
    PT_CHECK_OK(pt_stream_next_batch(&s1, 2, 1, 2, r1));
    PT_CHECK(r0[0] == 10 && r0[1] == 11 && r0[2] == 12);
    PT_CHECK(r1[0] == 13 && r1[1] == 14 && r1[2] == 20);
    PT_CHECK_OK(pt_stream_next_batch(&s0, 2, 0, 2, r0)); /* 21 22 | 10 ... wrapped */
    PT_CHECK_OK(pt_stream_next_batch(&s1, 2, 1, 2, r1));
    PT_CHECK(r0[0] == 21 && r0[1] == 22 && r0[2] == 10);
    PT_CHECK(r1[0] == 11 && r1[1] == 12 && r1[2] == 13);
    PT_CHECK(s0.shard == s1.shard && s0.offset == s1.offset);
    PT_CHECK_ERR(pt_stream_next_batch(&s0, 2, 2, 2, r0), PT_ERR_VALUE, "rank 2 is not in a world of 2");
    pt_shard_set_close(set);
}

PT_TEST(docs_split_at_bos) {
    /* tokens: 5 1 7 8 1 9 1 1 4 1   (BOS = 1)
     * BOS at 1,4,6,7,9 -> docs [1..4] len 4, [4..6] len 3, [6..7] len 2, [7..9] len 3, [9] len 1 dropped;
     * leading 5 belongs to no document. */
    uint16_t t[10] = {5, 1, 7, 8, 1, 9, 1, 1, 4, 1};
    int64_t *s, *l, n;
    PT_CHECK_OK(pt_docs_split(t, 10, &s, &l, &n));
    PT_CHECK(n == 4);
    int64_t ws[4] = {1, 4, 6, 7}, wl[4] = {4, 3, 2, 3};
    for (int i = 0; i < 4 && n == 4; i++)
        PT_CHECK(s[i] == ws[i] && l[i] == wl[i]);
    free(s);
    free(l);
    /* a stream starting with BOS: Σ (len-1) = N-1, every target predicted once */
    uint16_t u[8] = {1, 3, 4, 1, 5, 1, 6, 7};
    PT_CHECK_OK(pt_docs_split(u, 8, &s, &l, &n));
    int64_t preds = 0;
    for (int i = 0; i < n; i++)
        preds += l[i] - 1;
    PT_CHECK(n == 3 && preds == 7 && l[2] == 3);
    free(s);
    free(l);
    uint16_t none[3] = {4, 5, 6};
    PT_CHECK_OK(pt_docs_split(none, 3, &s, &l, &n));
    PT_CHECK(n == 0 && s == NULL);
}

PT_TEST(bundled_sample_shards) {
    pt_shard_set *set = NULL;
    PT_CHECK_OK(pt_shard_set_open(&set, "data/sample/fineweb_train_*.bin"));
    if (!set)
        return;
    PT_CHECK(set->n == 2);
    PT_CHECK(set->total == 811082 + 680207);
    for (int i = 0; i < set->n; i++) {
        PT_CHECK_OK(pt_shard_check_vocab(set->shards[i], 1024));
        PT_CHECK(set->shards[i]->tokens[0] == PT_SHARD_BOS);
    }
    pt_shard_set_close(set);
    pt_shard *v = NULL;
    PT_CHECK_OK(pt_shard_open(&v, "data/sample/fineweb_val_000000.bin"));
    int64_t *s, *l, n;
    PT_CHECK_OK(pt_docs_split(v->tokens, v->count, &s, &l, &n));
    PT_CHECK(v->count == 117937 && n == 119);
    int64_t preds = 0;
    for (int i = 0; i < n; i++)
        preds += l[i] - 1;
    PT_CHECK(preds == v->count - 1);
    free(s);
    free(l);
    pt_shard_close(v);
}

int main(void) {
    int rc = pt_test_main();
    char cmd[128];
    if (pt_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pt_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", pt_dir);
    }
    return rc;
}
