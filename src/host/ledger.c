/* ledger.c — the score-first ledger (contract in pt_ledger.h): per-target scored counts and
 * training flags, NLL from logits computed here (max-subtracted log-softmax in f64), BPB
 * accumulators in f64, and the legality verdict.
 *
 * Test: ctest --test-dir build -R test_ledger   (tests/c/test_ledger.c)
 */
#include "pt_ledger.h"

#include <math.h>   /* exp, log, tanh, isfinite */
#include <stdlib.h> /* malloc, calloc, free */
#include <string.h> /* memcpy, memcmp, strdup */

#include "pt_shards.h" /* pt_tokens_check_vocab */

enum { PT_LF_TRAINED = 1, PT_LF_TRAINED_FIRST = 2, PT_LF_PENDING = 4 };

struct pt_ledger {
    int64_t n;          /* tokens; targets are 1..n-1 */
    uint16_t *tokens;
    uint32_t *scored;   /* [n], times each target was scored (index 0 unused) */
    uint8_t *flags;     /* [n], PT_LF_* */
    pt_byte_tables bt;  /* own copy */
    int legal;
    char *name;
    double nll_sum, byte_sum;
    int64_t token_count, nll_rescaled, nll_external;
};

void pt_ledger_free(pt_ledger *l) {
    if (!l)
        return;
    free(l->tokens);
    free(l->scored);
    free(l->flags);
    free(l->bt.base_bytes);
    free(l->bt.has_space);
    free(l->bt.is_boundary);
    free(l->name);
    free(l);
}

pt_status pt_ledger_open(pt_ledger **out, const uint16_t *tokens, int64_t n, const pt_byte_tables *bt,
                         int legal, const char *name) {
    if (!name)
        name = "the validation stream";
    if (n < 2)
        return PT_FAIL(PT_ERR_VALUE, "ledger: %s has %lld tokens; at least 2 are needed for one target", name,
                       (long long)n);
    PT_TRY(pt_tokens_check_vocab(tokens, n, bt->sp_vocab, name));
    pt_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return PT_FAIL(PT_ERR_OOM, "ledger: out of memory");
    l->n = n;
    l->legal = legal ? 1 : 0;
    l->tokens = malloc((size_t)n * sizeof *l->tokens);
    l->scored = calloc((size_t)n, sizeof *l->scored);
    l->flags = calloc((size_t)n, 1);
    l->name = strdup(name);
    l->bt = *bt;
    l->bt.base_bytes = malloc((size_t)bt->size * sizeof *bt->base_bytes);
    l->bt.has_space = malloc((size_t)bt->size);
    l->bt.is_boundary = malloc((size_t)bt->size);
    if (!l->tokens || !l->scored || !l->flags || !l->name || !l->bt.base_bytes || !l->bt.has_space ||
        !l->bt.is_boundary) {
        pt_ledger_free(l);
        return PT_FAIL(PT_ERR_OOM, "ledger: out of memory for %lld tokens", (long long)n);
    }
    memcpy(l->tokens, tokens, (size_t)n * sizeof *tokens);
    memcpy(l->bt.base_bytes, bt->base_bytes, (size_t)bt->size * sizeof *bt->base_bytes);
    memcpy(l->bt.has_space, bt->has_space, (size_t)bt->size);
    memcpy(l->bt.is_boundary, bt->is_boundary, (size_t)bt->size);
    *out = l;
    return PT_OK;
}

int64_t pt_ledger_ntokens(const pt_ledger *l) { return l->n; }
int pt_ledger_is_legal_mode(const pt_ledger *l) { return l->legal; }
const uint16_t *pt_ledger_tokens(const pt_ledger *l) { return l->tokens; }

/* Range checks every position; in legal mode also refuses one already scored or repeated within
 * this call. Leaves no PENDING bits behind. */
static pt_status pt_ledger_check_positions(pt_ledger *l, const int64_t *pos, int64_t n) {
    pt_status st = PT_OK;
    int64_t i = 0;
    for (; i < n; i++) {
        int64_t t = pos[i];
        if (t < 1 || t >= l->n) {
            st = PT_FAIL(PT_ERR_INDEX,
                         "ledger: target position %lld (row %lld) is outside 1..%lld of %s (position t predicts "
                         "token t from token t-1)",
                         (long long)t, (long long)i, (long long)(l->n - 1), l->name);
            break;
        }
        if (!l->legal)
            continue;
        if (l->scored[t] > 0 || (l->flags[t] & PT_LF_PENDING)) {
            st = PT_FAIL(PT_ERR_LEGALITY,
                         "ledger: target position %lld of %s is scored a second time (row %lld); every target "
                         "may be scored once (score-first rule; open the ledger with legal=false to measure "
                         "such a run as non-compliant)",
                         (long long)t, l->name, (long long)i);
            break;
        }
        l->flags[t] |= PT_LF_PENDING;
    }
    if (l->legal)
        for (int64_t j = 0; j < i; j++)
            l->flags[pos[j]] &= (uint8_t)~PT_LF_PENDING;
    return st;
}

static pt_status pt_ledger_check_rescale(pt_ledger *l, double rescale, int64_t n) {
    if (!isfinite(rescale))
        return PT_FAIL(PT_ERR_VALUE, "ledger: NLL rescale factor %g is not finite", rescale);
    if (rescale != 1.0 && l->legal)
        return PT_FAIL(PT_ERR_LEGALITY,
                       "ledger: NLL rescaled by %.15g for %lld targets of %s; the reported loss must be the "
                       "model's own NLL (change the logits, e.g. a temperature, instead)",
                       rescale, (long long)n, l->name);
    return PT_OK;
}

static void pt_ledger_commit(pt_ledger *l, const int64_t *pos, int64_t n, const double *nll, double rescale,
                             int external) {
    for (int64_t i = 0; i < n; i++) {
        int64_t t = pos[i];
        double v = nll[i] * rescale;
        l->nll_sum += v;
        l->byte_sum += pt_byte_tables_bytes(&l->bt, l->tokens[t - 1], l->tokens[t]);
        if (l->scored[t] < UINT32_MAX)
            l->scored[t]++;
    }
    l->token_count += n;
    if (rescale != 1.0)
        l->nll_rescaled += n;
    if (external)
        l->nll_external += n;
}

pt_status pt_ledger_score(pt_ledger *l, const int64_t *positions, int64_t n, const float *logits, int64_t V,
                          double temperature, double softcap, double rescale, double *nll_out) {
    if (n < 0)
        return PT_FAIL(PT_ERR_VALUE, "ledger.score: negative row count %lld", (long long)n);
    if (n == 0)
        return PT_OK;
    if (V < 1)
        return PT_FAIL(PT_ERR_SHAPE, "ledger.score: logits need at least one column, got V=%lld", (long long)V);
    if (!(temperature > 0) || !isfinite(temperature))
        return PT_FAIL(PT_ERR_VALUE, "ledger.score: temperature must be a positive number, got %g", temperature);
    if (!(softcap >= 0) || !isfinite(softcap))
        return PT_FAIL(PT_ERR_VALUE, "ledger.score: softcap must be >= 0 (0 = none), got %g", softcap);
    PT_TRY(pt_ledger_check_rescale(l, rescale, n));
    PT_TRY(pt_ledger_check_positions(l, positions, n));
    double *nll = nll_out ? nll_out : malloc((size_t)n * sizeof *nll);
    if (!nll)
        return PT_FAIL(PT_ERR_OOM, "ledger.score: out of memory for %lld rows", (long long)n);
    /* Rows are independent: the OpenMP threads score whole rows with one thread's arithmetic (the
     * capped, tempered row in a per-thread buffer, then its max and Σ exp in column order), so the NLLs
     * do not depend on the thread count; the lowest failing row is the one reported. */
    pt_status st = PT_OK;
    int64_t first_bad = n, oom = 0;
#pragma omp parallel if (n * V >= 65536) reduction(min : first_bad) reduction(max : oom)
    {
        double *zb = malloc((size_t)V * sizeof *zb);
        if (!zb)
            oom = 1;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            int y = l->tokens[positions[i]];
            if (!zb || y >= V) {
                if (i < first_bad)
                    first_bad = i;
                continue;
            }
            const float *row = logits + i * V;
            double mx = -INFINITY;
            for (int64_t v = 0; v < V; v++) {
                double z = row[v];
                if (softcap > 0)
                    z = softcap * tanh(z / softcap);
                z /= temperature;
                zb[v] = z;
                if (z > mx)
                    mx = z;
            }
            double s = 0;
            for (int64_t v = 0; v < V; v++)
                s += exp(zb[v] - mx);
            nll[i] = (mx + log(s)) - zb[y];
            if (!isfinite(nll[i]) && i < first_bad)
                first_bad = i;
        }
        free(zb);
    }
    if (oom)
        st = PT_FAIL(PT_ERR_OOM, "ledger.score: out of memory for a row buffer of %lld values", (long long)V);
    else if (first_bad < n) {
        const int64_t i = first_bad;
        int y = l->tokens[positions[i]];
        if (y >= V)
            st = PT_FAIL(PT_ERR_SHAPE,
                         "ledger.score: target token %d at position %lld of %s is outside the logits' %lld "
                         "columns",
                         y, (long long)positions[i], l->name, (long long)V);
        else
            st = PT_FAIL(PT_ERR_VALUE,
                         "ledger.score: NLL of row %lld (position %lld) is %g: the logits hold NaN or infinity",
                         (long long)i, (long long)positions[i], nll[i]);
    }
    if (st == PT_OK) {
        pt_ledger_commit(l, positions, n, nll, rescale, 0);
        if (nll_out && rescale != 1.0)
            for (int64_t i = 0; i < n; i++)
                nll_out[i] *= rescale;
    }
    if (!nll_out)
        free(nll);
    return st;
}

static pt_status pt_ledger_commit_nll(pt_ledger *l, const char *op, const int64_t *positions, int64_t n,
                                      const double *nll, double rescale, int external) {
    if (n < 0)
        return PT_FAIL(PT_ERR_VALUE, "%s: negative row count %lld", op, (long long)n);
    if (n == 0)
        return PT_OK;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(nll[i]) || nll[i] < 0)
            return PT_FAIL(PT_ERR_VALUE, "%s: NLL %g of row %lld (position %lld) is not a finite value >= 0%s", op,
                           nll[i], (long long)i, (long long)positions[i],
                           external ? "" : ": the logits hold NaN or infinity");
    PT_TRY(pt_ledger_check_rescale(l, rescale, n));
    PT_TRY(pt_ledger_check_positions(l, positions, n));
    pt_ledger_commit(l, positions, n, nll, rescale, external);
    return PT_OK;
}

pt_status pt_ledger_score_nll(pt_ledger *l, const int64_t *positions, int64_t n, const double *nll,
                              double rescale) {
    return pt_ledger_commit_nll(l, "ledger.score_nll", positions, n, nll, rescale, 1);
}

pt_status pt_ledger_score_device_nll(pt_ledger *l, const int64_t *positions, int64_t n, double *nll,
                                     double rescale) {
    PT_TRY(pt_ledger_commit_nll(l, "ledger.score", positions, n, nll, rescale, 0));
    if (rescale != 1.0)
        for (int64_t i = 0; i < n; i++)
            nll[i] *= rescale;
    return PT_OK;
}

pt_status pt_ledger_targets(pt_ledger *l, const int64_t *positions, int64_t n, int64_t V, int64_t *targets) {
    if (n < 0)
        return PT_FAIL(PT_ERR_VALUE, "ledger.score: negative row count %lld", (long long)n);
    if (n == 0)
        return PT_OK;
    PT_TRY(pt_ledger_check_positions(l, positions, n));
    for (int64_t i = 0; i < n; i++) {
        targets[i] = l->tokens[positions[i]];
        if (targets[i] >= V)
            return PT_FAIL(PT_ERR_SHAPE,
                           "ledger.score: target token %lld at position %lld of %s is outside the logits' %lld "
                           "columns",
                           (long long)targets[i], (long long)positions[i], l->name, (long long)V);
    }
    return PT_OK;
}

pt_status pt_ledger_grant(pt_ledger *l, int64_t start, int64_t end, uint16_t *tokens_out) {
    if (start < 1 || end > l->n || start > end)
        return PT_FAIL(PT_ERR_INDEX, "ledger.grant: target range [%lld, %lld) is outside [1, %lld) of %s",
                       (long long)start, (long long)end, (long long)l->n, l->name);
    if (l->legal) {
        for (int64_t t = start; t < end; t++)
            if (l->scored[t] == 0)
                return PT_FAIL(PT_ERR_LEGALITY,
                               "ledger.grant: target position %lld of %s has not been scored yet; training on "
                               "[%lld, %lld) would use an unscored token (score-first rule: score it first)",
                               (long long)t, l->name, (long long)start, (long long)end);
    }
    for (int64_t t = start; t < end; t++) {
        if (l->scored[t] == 0 && !(l->flags[t] & PT_LF_TRAINED))
            l->flags[t] |= PT_LF_TRAINED_FIRST;
        l->flags[t] |= PT_LF_TRAINED;
    }
    if (tokens_out && end > start)
        memcpy(tokens_out, l->tokens + start - 1, (size_t)(end - start + 1) * sizeof *tokens_out);
    return PT_OK;
}

pt_status pt_ledger_position(const pt_ledger *l, int64_t t, int *scored, int *trained, int *trained_first) {
    if (t < 1 || t >= l->n)
        return PT_FAIL(PT_ERR_INDEX, "ledger: target position %lld is outside 1..%lld", (long long)t,
                       (long long)(l->n - 1));
    *scored = (int)l->scored[t];
    *trained = (l->flags[t] & PT_LF_TRAINED) != 0;
    *trained_first = (l->flags[t] & PT_LF_TRAINED_FIRST) != 0;
    return PT_OK;
}

void pt_ledger_report_get(const pt_ledger *l, pt_ledger_report *r) {
    memset(r, 0, sizeof *r);
    r->targets = l->n - 1;
    for (int64_t t = 1; t < l->n; t++) {
        uint32_t c = l->scored[t];
        if (c == 0)
            r->scored_never++;
        else if (c == 1)
            r->scored_once++;
        else {
            r->scored_multiple++;
            r->duplicate_scorings += c - 1;
        }
        r->trained += (l->flags[t] & PT_LF_TRAINED) != 0;
        r->trained_before_scored += (l->flags[t] & PT_LF_TRAINED_FIRST) != 0;
    }
    r->nll_rescaled = l->nll_rescaled;
    r->nll_external = l->nll_external;
    r->token_count = l->token_count;
    r->nll_sum = l->nll_sum;
    r->byte_sum = l->byte_sum;
    r->loss = l->token_count > 0 ? l->nll_sum / (double)l->token_count : NAN;
    r->bpb = l->byte_sum > 0 ? l->nll_sum / (log(2.0) * l->byte_sum) : NAN;
    r->legal = r->scored_multiple == 0 && r->trained_before_scored == 0 && r->nll_rescaled == 0;
    r->verdict = r->legal ? "legal" : "illegal";
}

pt_status pt_ledger_merge(pt_ledger *a, const pt_ledger *b) {
    if (a == b)
        return PT_FAIL(PT_ERR_VALUE, "ledger.merge: cannot merge a ledger into itself");
    if (a->n != b->n || memcmp(a->tokens, b->tokens, (size_t)a->n * sizeof *a->tokens) != 0)
        return PT_FAIL(PT_ERR_VALUE, "ledger.merge: the ledgers are over different validation streams (%lld and "
                                     "%lld tokens)", (long long)a->n, (long long)b->n);
    if (a->legal) {
        for (int64_t t = 1; t < a->n; t++) {
            if (a->scored[t] && b->scored[t])
                return PT_FAIL(PT_ERR_LEGALITY,
                               "ledger.merge: target position %lld of %s was scored in both ledgers", (long long)t,
                               a->name);
        }
    }
    for (int64_t t = 1; t < a->n; t++) {
        uint64_t c = (uint64_t)a->scored[t] + b->scored[t];
        a->scored[t] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        a->flags[t] |= b->flags[t] & (PT_LF_TRAINED | PT_LF_TRAINED_FIRST);
    }
    a->nll_sum += b->nll_sum;
    a->byte_sum += b->byte_sum;
    a->token_count += b->token_count;
    a->nll_rescaled += b->nll_rescaled;
    a->nll_external += b->nll_external;
    return PT_OK;
}

void pt_ledger_export(const pt_ledger *l, int32_t *scored, uint8_t *trained, uint8_t *trained_first, double acc[5]) {
    for (int64_t t = 0; t < l->n; t++) {
        scored[t] = t == 0 ? 0 : (int32_t)(l->scored[t] > INT32_MAX ? INT32_MAX : l->scored[t]);
        trained[t] = t > 0 && (l->flags[t] & PT_LF_TRAINED) != 0;
        trained_first[t] = t > 0 && (l->flags[t] & PT_LF_TRAINED_FIRST) != 0;
    }
    acc[0] = l->nll_sum;
    acc[1] = l->byte_sum;
    acc[2] = (double)l->token_count;
    acc[3] = (double)l->nll_rescaled;
    acc[4] = (double)l->nll_external;
}

pt_status pt_ledger_import(pt_ledger *l, const int32_t *scored, const uint8_t *trained, const uint8_t *trained_first,
                           const double acc[5]) {
    for (int64_t t = 1; t < l->n; t++) {
        if (scored[t] < 0)
            return PT_FAIL(PT_ERR_VALUE, "ledger.import: target position %lld of %s has a negative scored count %d",
                           (long long)t, l->name, (int)scored[t]);
        if (l->legal && scored[t] > 1)
            return PT_FAIL(PT_ERR_LEGALITY,
                           "ledger.import: target position %lld of %s was scored %d times across ranks (a position "
                           "scored on two ranks is a violation of the score-first rule)",
                           (long long)t, l->name, (int)scored[t]);
    }
    for (int64_t t = 1; t < l->n; t++) {
        l->scored[t] = (uint32_t)scored[t];
        l->flags[t] = (uint8_t)((trained[t] ? PT_LF_TRAINED : 0) | (trained_first[t] ? PT_LF_TRAINED_FIRST : 0));
    }
    l->nll_sum = acc[0];
    l->byte_sum = acc[1];
    l->token_count = (int64_t)acc[2];
    l->nll_rescaled = (int64_t)acc[3];
    l->nll_external = (int64_t)acc[4];
    return PT_OK;
}
