/* test_ledger.c — the score-first ledger: NLL from logits against a PyTorch reference
 * (tests/reference/ledger_nll.py), BPB accounting, and the adversarial runs that must all end
 * "illegal" with the right counts (score twice, train on an unscored chunk, an off-by-one grant at a
 * chunk edge, a second epoch that rescores, NLL × 0.98), plus legal mode raising.
 *
 * Run: ctest --test-dir build -R test_ledger   (from the repository root: build/test_ledger)
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "pt_ledger.h"
#include "pt_sptok.h"
#include "pt_test.h"

static pt_byte_tables *tables(void) {
    static pt_byte_tables *bt;
    if (!bt) {
        pt_sptok *tok = NULL;
        PT_CHECK_OK(pt_sptok_load(&tok, "data/tokenizers/fineweb_1024_bpe.model"));
        if (tok)
            PT_CHECK_OK(pt_byte_tables_build(&bt, tok, 0));
        pt_sptok_free(tok);
    }
    return bt;
}

/* N tokens with values < 16 (and BOS at 0 and every 50th position) */
#define N 201
#define VS 16
static uint16_t toks[N];
static pt_ledger *open_small(int legal) {
    for (int i = 0; i < N; i++)
        toks[i] = (uint16_t)(i % 50 == 0 ? 1 : 4 + (i * 7) % 12);
    pt_ledger *l = NULL;
    PT_CHECK_OK(pt_ledger_open(&l, toks, N, tables(), legal, "val.bin"));
    return l;
}

/* scores targets [a, b) with deterministic logits over VS columns */
static pt_status score_range(pt_ledger *l, int64_t a, int64_t b, double rescale) {
    int64_t n = b - a;
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    float *lg = malloc((size_t)(n * VS) * sizeof *lg);
    for (int64_t i = 0; i < n; i++) {
        pos[i] = a + i;
        for (int v = 0; v < VS; v++)
            lg[i * VS + v] = (float)sin(0.3 * (double)(a + i) + v);
    }
    pt_status st = pt_ledger_score(l, pos, n, lg, VS, 1.0, 0.0, rescale, NULL);
    free(pos);
    free(lg);
    return st;
}

static double direct_bytes(int64_t a, int64_t b) {
    pt_byte_tables *bt = tables();
    double s = 0;
    for (int64_t t = a; t < b; t++)
        s += pt_byte_tables_bytes(bt, toks[t - 1], toks[t]);
    return s;
}

PT_TEST(nll_matches_pytorch_reference) {
    /* tokens: BOS, then targets y_i = (97 i + 5) % 1024 at positions 1..8 */
    uint16_t t[9] = {1};
    for (int i = 0; i < 8; i++)
        t[i + 1] = (uint16_t)((97 * i + 5) % 1024);
    pt_ledger *l = NULL;
    PT_CHECK_OK(pt_ledger_open(&l, t, 9, tables(), 1, "ref"));
    if (!l)
        return;
    float *lg = malloc(8 * 1024 * sizeof *lg);
    int64_t pos[8];
    for (int i = 0; i < 8; i++) {
        pos[i] = i + 1;
        for (int v = 0; v < 1024; v++)
            lg[i * 1024 + v] = (float)(40 * sin(0.37 * i + 0.11 * v + 0.05 * i * v));
    }
    double nll[8];
    PT_CHECK_OK(pt_ledger_score(l, pos, 8, lg, 1024, 0.9, 30.0, 1.0, nll));
    const double ref[8] = {13.692937838683385, 60.554617780677425, 62.716148017068065, 15.795970991575917,
                           58.360976731657523, 8.7256544919550301, 60.591968091611776, 30.632192617983002};
    for (int i = 0; i < 8; i++)
        PT_CHECK_NEAR(nll[i], ref[i], 1e-9 * ref[i]);
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK_NEAR(r.nll_sum, 311.07046656121213, 1e-8);
    PT_CHECK(r.token_count == 8 && r.scored_once == 8 && r.targets == 8 && r.legal);
    double bytes = 0;
    for (int i = 1; i < 9; i++)
        bytes += pt_byte_tables_bytes(tables(), t[i - 1], t[i]);
    PT_CHECK(r.byte_sum == bytes && bytes > 0);
    PT_CHECK_NEAR(r.loss, 311.07046656121213 / 8, 1e-9);
    PT_CHECK_NEAR(r.bpb, 311.07046656121213 / (log(2.0) * bytes), 1e-9);
    PT_CHECK(strcmp(r.verdict, "legal") == 0);
    pt_ledger_free(l);
    free(lg);
}

PT_TEST(nll_matches_direct_log_softmax) {
    pt_ledger *l = open_small(1);
    if (!l)
        return;
    /* no softcap, temperature 1: NLL = log Σ exp(z) - z_y, computed here in long double */
    PT_CHECK_OK(score_range(l, 1, 11, 1.0));
    long double want = 0;
    for (int t = 1; t < 11; t++) {
        long double s = 0;
        for (int v = 0; v < VS; v++)
            s += expl((long double)(float)sin(0.3 * t + v));
        want += logl(s) - (long double)(float)sin(0.3 * t + toks[t]);
    }
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK_NEAR(r.nll_sum, (double)want, 1e-12);
    PT_CHECK(r.byte_sum == direct_bytes(1, 11));
    /* a temperature is allowed; huge logits stay finite (max-subtracted) */
    int64_t p = 11;
    float big[VS];
    for (int v = 0; v < VS; v++)
        big[v] = v == toks[11] ? 1e30f : 0.0f;
    double nll;
    PT_CHECK_OK(pt_ledger_score(l, &p, 1, big, VS, 2.0, 0.0, 1.0, &nll));
    PT_CHECK(nll == 0.0);
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.legal && r.scored_once == 11 && r.scored_never == N - 1 - 11);
    pt_ledger_free(l);
}

/* the threaded scoring (rows over OpenMP threads when n·V >= 65536) gives each row the same bits for
 * any thread count, softcap and temperature included; a bad row is still the lowest one reported */
PT_TEST(nll_independent_of_threads) {
    enum { R = 150, V = 1024 };
    float *lg = malloc(sizeof(float) * R * V);
    double *a = malloc(sizeof(double) * R), *b = malloc(sizeof(double) * R);
    int64_t pos[R];
    const int threads = omp_get_max_threads();
    PT_CHECK(lg && a && b);
    if (!lg || !a || !b)
        goto done;
    for (int i = 0; i < R; i++) {
        pos[i] = 1 + i;
        for (int v = 0; v < V; v++)
            lg[i * V + v] = (float)(20 * sin(0.37 * i + 0.011 * v * v));
    }
    for (int k = 0; k < 2; k++) {
        pt_ledger *l = open_small(1);
        if (!l)
            goto done;
        omp_set_num_threads(k == 0 ? 1 : 3);
        PT_CHECK_OK(pt_ledger_score(l, pos, R, lg, V, 1.5, 30.0, 1.0, k == 0 ? a : b));
        pt_ledger_free(l);
    }
    PT_CHECK(memcmp(a, b, sizeof(double) * R) == 0);
    lg[40 * V + 3] = NAN; /* rows 40 and 90 bad: row 40 is named */
    lg[90 * V + 5] = NAN;
    {
        pt_ledger *l = open_small(1);
        if (l) {
            PT_CHECK(pt_ledger_score(l, pos, R, lg, V, 1.0, 0.0, 1.0, NULL) == PT_ERR_VALUE);
            PT_CHECK(strstr(pt_last_error(), "NLL of row 40 (position 41)") != NULL);
            pt_ledger_report r;
            pt_ledger_report_get(l, &r);
            PT_CHECK(r.scored_once == 0); /* nothing committed */
            pt_ledger_free(l);
        }
    }
done:
    omp_set_num_threads(threads);
    free(lg);
    free(a);
    free(b);
}

PT_TEST(legal_score_then_train_loop) {
    /* the TTT pattern: score a chunk, then train on it; every target exactly once */
    pt_ledger *l = open_small(1);
    if (!l)
        return;
    uint16_t got[33];
    for (int64_t a = 1; a < N; a += 32) {
        int64_t b = a + 32 < N ? a + 32 : N;
        PT_CHECK_OK(score_range(l, a, b, 1.0));
        PT_CHECK_OK(pt_ledger_grant(l, a, b, got));
        PT_CHECK(memcmp(got, toks + a - 1, (size_t)(b - a + 1) * 2) == 0);
    }
    PT_CHECK_OK(pt_ledger_grant(l, 1, N, NULL)); /* a second training epoch over scored data is fine */
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.targets == 200 && r.scored_once == 200 && r.scored_never == 0 && r.scored_multiple == 0);
    PT_CHECK(r.trained == 200 && r.trained_before_scored == 0 && r.nll_rescaled == 0 && r.legal);
    PT_CHECK(r.byte_sum == direct_bytes(1, N));
    pt_ledger_free(l);
}

PT_TEST(adversarial_score_twice) {
    pt_ledger *l = open_small(0);
    if (!l)
        return;
    PT_CHECK_OK(score_range(l, 1, 101, 1.0));
    PT_CHECK_OK(score_range(l, 91, 101, 1.0)); /* 10 targets again */
    PT_CHECK_OK(score_range(l, 95, 97, 1.0));  /* 2 of them a third time */
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.scored_once == 90 && r.scored_multiple == 10 && r.duplicate_scorings == 12);
    PT_CHECK(r.scored_never == 100 && r.token_count == 112);
    PT_CHECK(!r.legal && strcmp(r.verdict, "illegal") == 0);
    pt_ledger_free(l);

    l = open_small(1);
    PT_CHECK_OK(score_range(l, 1, 101, 1.0));
    PT_CHECK_ERR(score_range(l, 95, 105, 1.0), PT_ERR_LEGALITY, "target position 95 of val.bin is scored a second time");
    /* a repeat inside one call is caught too, and the failing calls changed nothing */
    int64_t pos[3] = {150, 151, 150};
    float lg[3 * VS] = {0};
    PT_CHECK_ERR(pt_ledger_score(l, pos, 3, lg, VS, 1, 0, 1, NULL), PT_ERR_LEGALITY, "target position 150 of val.bin");
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.scored_once == 100 && r.token_count == 100 && r.legal);
    PT_CHECK_OK(score_range(l, 101, 201, 1.0)); /* 150, 151 still scoreable */
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.scored_once == 200 && r.legal);
    pt_ledger_free(l);
}

PT_TEST(adversarial_train_on_unscored_chunk) {
    pt_ledger *l = open_small(0);
    if (!l)
        return;
    /* #1539 style: train on the whole val stream, then score it */
    PT_CHECK_OK(pt_ledger_grant(l, 1, N, NULL));
    PT_CHECK_OK(score_range(l, 1, N, 1.0));
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.trained_before_scored == 200 && r.scored_once == 200 && r.trained == 200);
    PT_CHECK(!r.legal);
    pt_ledger_free(l);

    l = open_small(1);
    PT_CHECK_OK(score_range(l, 1, 33, 1.0));
    PT_CHECK_ERR(pt_ledger_grant(l, 33, 65, NULL), PT_ERR_LEGALITY,
                 "target position 33 of val.bin has not been scored yet");
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.trained == 0 && r.legal);
    pt_ledger_free(l);
}

PT_TEST(adversarial_off_by_one_grant) {
    pt_ledger *l = open_small(0);
    if (!l)
        return;
    for (int64_t a = 1; a < N; a += 32) {
        int64_t b = a + 32 < N ? a + 32 : N;
        PT_CHECK_OK(score_range(l, a, b, 1.0));
        PT_CHECK_OK(pt_ledger_grant(l, a, b + 1 < N ? b + 1 : N, NULL)); /* one target too far */
    }
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    /* chunk edges 33, 65, 97, 129, 161, 193 were trained before being scored */
    PT_CHECK(r.trained_before_scored == 6 && r.scored_once == 200 && r.scored_multiple == 0);
    PT_CHECK(!r.legal);
    int sc, tr, tf;
    PT_CHECK_OK(pt_ledger_position(l, 65, &sc, &tr, &tf));
    PT_CHECK(sc == 1 && tr == 1 && tf == 1);
    PT_CHECK_OK(pt_ledger_position(l, 64, &sc, &tr, &tf));
    PT_CHECK(sc == 1 && tr == 1 && tf == 0);
    pt_ledger_free(l);

    l = open_small(1);
    PT_CHECK_OK(score_range(l, 1, 33, 1.0));
    PT_CHECK_ERR(pt_ledger_grant(l, 1, 34, NULL), PT_ERR_LEGALITY, "target position 33 of val.bin has not been scored");
    PT_CHECK_OK(pt_ledger_grant(l, 1, 33, NULL));
    pt_ledger_free(l);
}

PT_TEST(adversarial_second_epoch_rescores) {
    /* DeepQuant style: epoch 1 scores and trains, epoch 2 scores everything again */
    pt_ledger *l = open_small(0);
    if (!l)
        return;
    for (int epoch = 0; epoch < 2; epoch++)
        for (int64_t a = 1; a < N; a += 40) {
            int64_t b = a + 40 < N ? a + 40 : N;
            PT_CHECK_OK(score_range(l, a, b, 1.0));
            PT_CHECK_OK(pt_ledger_grant(l, a, b, NULL));
        }
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.scored_multiple == 200 && r.scored_once == 0 && r.duplicate_scorings == 200);
    PT_CHECK(r.trained_before_scored == 0 && r.token_count == 400 && !r.legal);
    PT_CHECK(r.byte_sum == 2 * direct_bytes(1, N));
    pt_ledger_free(l);
}

PT_TEST(adversarial_nll_rescaled) {
    pt_ledger *l = open_small(0), *ref = open_small(1);
    if (!l || !ref)
        return;
    PT_CHECK_OK(score_range(l, 1, N, 0.98));
    PT_CHECK_OK(score_range(ref, 1, N, 1.0));
    pt_ledger_report r, rr;
    pt_ledger_report_get(l, &r);
    pt_ledger_report_get(ref, &rr);
    PT_CHECK(r.nll_rescaled == 200 && r.scored_once == 200 && !r.legal);
    PT_CHECK_NEAR(r.nll_sum, 0.98 * rr.nll_sum, 1e-9);
    PT_CHECK(rr.legal);
    pt_ledger_free(l);
    pt_ledger_free(ref);

    /* the same through externally supplied NLLs */
    l = open_small(0);
    int64_t pos[4] = {1, 2, 3, 4};
    double nll[4] = {1.0, 2.0, 3.0, 4.0};
    PT_CHECK_OK(pt_ledger_score_nll(l, pos, 4, nll, 0.98));
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.nll_rescaled == 4 && r.nll_external == 4 && !r.legal);
    PT_CHECK_NEAR(r.nll_sum, 9.8, 1e-12);
    pt_ledger_free(l);

    l = open_small(1);
    PT_CHECK_ERR(score_range(l, 1, 10, 0.98), PT_ERR_LEGALITY, "NLL rescaled by 0.98 for 9 targets");
    PT_CHECK_ERR(pt_ledger_score_nll(l, pos, 4, nll, 0.98), PT_ERR_LEGALITY, "NLL rescaled");
    /* external NLLs without rescaling: legal, but reported */
    PT_CHECK_OK(pt_ledger_score_nll(l, pos, 4, nll, 1.0));
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.nll_external == 4 && r.nll_rescaled == 0 && r.legal && r.nll_sum == 10.0);
    pt_ledger_free(l);
}

PT_TEST(merge_distributed) {
    pt_ledger *a = open_small(1), *b = open_small(1), *all = open_small(1);
    if (!a || !b || !all)
        return;
    PT_CHECK_OK(score_range(a, 1, 101, 1.0));
    PT_CHECK_OK(score_range(b, 101, N, 1.0));
    PT_CHECK_OK(score_range(all, 1, N, 1.0));
    PT_CHECK_OK(pt_ledger_merge(a, b));
    pt_ledger_report r, ra;
    pt_ledger_report_get(a, &r);
    pt_ledger_report_get(all, &ra);
    PT_CHECK(r.scored_once == 200 && r.legal && r.token_count == 200);
    PT_CHECK_NEAR(r.nll_sum, ra.nll_sum, 1e-9);
    PT_CHECK(r.byte_sum == ra.byte_sum);
    /* overlap: legal mode refuses, legal=false counts */
    PT_CHECK_ERR(pt_ledger_merge(a, all), PT_ERR_LEGALITY, "target position 1 of val.bin was scored in both");
    pt_ledger_free(a);
    pt_ledger_free(b);
    a = open_small(0);
    PT_CHECK_OK(score_range(a, 1, 11, 1.0));
    PT_CHECK_OK(pt_ledger_merge(a, all));
    pt_ledger_report_get(a, &r);
    PT_CHECK(r.scored_multiple == 10 && r.scored_once == 190 && !r.legal);
    /* different streams */
    uint16_t other[5] = {1, 4, 5, 6, 7};
    PT_CHECK_OK(pt_ledger_open(&b, other, 5, tables(), 1, "x"));
    PT_CHECK_ERR(pt_ledger_merge(a, b), PT_ERR_VALUE, "different validation streams");
    pt_ledger_free(a);
    pt_ledger_free(b);
    pt_ledger_free(all);
}

PT_TEST(ledger_bad_input) {
    pt_ledger *l = NULL;
    uint16_t bad[4] = {1, 5, 1500, 6};
    PT_CHECK_ERR(pt_ledger_open(&l, bad, 4, tables(), 1, "fineweb_val_000000.bin"), PT_ERR_VALUE,
                 "token 1500 at position 2 of fineweb_val_000000.bin is outside the vocabulary (1024)");
    PT_CHECK_ERR(pt_ledger_open(&l, bad, 1, tables(), 1, "v"), PT_ERR_VALUE, "v has 1 tokens; at least 2");
    l = open_small(0);
    if (!l)
        return;
    int64_t p0 = 0, pn = N;
    float lg[VS] = {0};
    PT_CHECK_ERR(pt_ledger_score(l, &p0, 1, lg, VS, 1, 0, 1, NULL), PT_ERR_INDEX, "target position 0 (row 0) is outside 1..200");
    PT_CHECK_ERR(pt_ledger_score(l, &pn, 1, lg, VS, 1, 0, 1, NULL), PT_ERR_INDEX, "target position 201");
    PT_CHECK_ERR(pt_ledger_grant(l, 0, 5, NULL), PT_ERR_INDEX, "target range [0, 5) is outside [1, 201)");
    int64_t p1 = 1;
    PT_CHECK_ERR(pt_ledger_score(l, &p1, 1, lg, 4, 1, 0, 1, NULL), PT_ERR_SHAPE, "outside the logits' 4 columns");
    PT_CHECK_ERR(pt_ledger_score(l, &p1, 1, lg, VS, 0, 0, 1, NULL), PT_ERR_VALUE, "temperature must be a positive number");
    lg[3] = NAN;
    PT_CHECK_ERR(pt_ledger_score(l, &p1, 1, lg, VS, 1, 0, 1, NULL), PT_ERR_VALUE, "logits hold NaN");
    pt_ledger_report r;
    pt_ledger_report_get(l, &r);
    PT_CHECK(r.token_count == 0 && r.scored_never == 200 && r.legal && isnan(r.bpb));
    pt_ledger_free(l);
}

int main(void) { return pt_test_main(); }
