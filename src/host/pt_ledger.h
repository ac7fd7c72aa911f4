/* pt_ledger.h — the score-first ledger (DESIGN.md "The ledger"): the only owner of the validation
 * stream's legality state, and the BPB accumulator.
 *
 * Positions: the ledger is opened over all N validation tokens; target position t (1 <= t < N)
 * predicts tokens[t] from tokens[t-1], so there are N-1 targets. Per target the ledger keeps how
 * many times it was scored, whether it was ever granted for training, and whether that grant came
 * before its first scoring.
 *
 *   score      the ledger computes each row's NLL itself from the logits (optional softcap
 *              c·tanh(z/c), then division by a temperature: both allowed), adds NLL and
 *              bytes(tokens[t-1], tokens[t]) (spec §1.3) to f64 accumulators and marks the targets.
 *   score_nll  NLLs computed by the caller: accepted but counted as "nll supplied externally".
 *   rescale    a factor applied to NLLs (DeepQuant's ×0.98): any factor != 1 is a violation.
 *   grant      training on targets [start, end) is allowed only when every one is already scored.
 *
 * legal = 1: a violation (scoring twice, training before scoring, rescaling, overlap in merge) is a
 * PT_ERR_LEGALITY error naming the position, and nothing is changed by the failing call.
 * legal = 0: the call goes through and the violation is counted; the verdict becomes "illegal".
 *
 * Tested by tests/c/test_ledger.c and tests/lua/test_data.lua.
 */
#ifndef PT_LEDGER_H
#define PT_LEDGER_H

#include <stdint.h>

#include "pt_sptok.h"
#include "pt_status.h"

typedef struct pt_ledger pt_ledger;

typedef struct {
    int64_t targets;               /* N - 1 */
    int64_t scored_once;           /* targets scored exactly once */
    int64_t scored_never;          /* reported, does not make the run illegal */
    int64_t scored_multiple;       /* targets scored more than once */
    int64_t duplicate_scorings;    /* Σ (count - 1) over targets scored more than once */
    int64_t trained;               /* targets granted for training at least once */
    int64_t trained_before_scored; /* targets granted while still unscored */
    int64_t nll_rescaled;          /* NLL values multiplied by a factor != 1 */
    int64_t nll_external;          /* NLL values supplied by the caller (score_nll) */
    int64_t token_count;           /* scorings that went into the sums (duplicates included) */
    double nll_sum;                /* Σ ℓ (nats) */
    double byte_sum;               /* Σ bytes */
    double loss;                   /* nll_sum / token_count (NaN when nothing was scored) */
    double bpb;                    /* nll_sum / (ln 2 · byte_sum) (NaN when byte_sum is 0) */
    int legal;                     /* the verdict: 1 legal, 0 illegal */
    const char *verdict;           /* "legal" / "illegal" */
} pt_ledger_report;

/* Copies tokens (N >= 2). Every token must be inside the tokenizer's vocabulary (bt->sp_vocab);
 * bt is copied as well. name appears in messages ("fineweb_val_*.bin"). */
pt_status pt_ledger_open(pt_ledger **out, const uint16_t *tokens, int64_t n, const pt_byte_tables *bt,
                         int legal, const char *name);
void pt_ledger_free(pt_ledger *l);

int64_t pt_ledger_ntokens(const pt_ledger *l);
int pt_ledger_is_legal_mode(const pt_ledger *l);
/* Read-only view of the validation tokens (model inputs are always readable; only training on
 * targets goes through grant). */
const uint16_t *pt_ledger_tokens(const pt_ledger *l);

/* Scores n rows. positions[i] is a target position; logits is row-major [n, V] f32. The caller's
 * logits are first softcapped when softcap > 0 (softcap·tanh(z/softcap)), then divided by
 * temperature (> 0). rescale must be 1 for a legal result. nll_out (may be NULL) receives each row's
 * NLL as accumulated. */
pt_status pt_ledger_score(pt_ledger *l, const int64_t *positions, int64_t n, const float *logits, int64_t V,
                          double temperature, double softcap, double rescale, double *nll_out);
/* The targets of n positions (tokens[t] for each t; no state changes): the positions are checked as
 * score checks them (range, and in legal mode not yet scored), and every target must be < V. For the
 * device path of the Lua binding (src/bindings/ledger.c), which computes the NLL of logits on their
 * device with these targets and commits it through pt_ledger_score_device_nll. */
pt_status pt_ledger_targets(pt_ledger *l, const int64_t *positions, int64_t n, int64_t V, int64_t *targets);
/* Commits NLLs that the ledger's binding computed from the caller's logits on their device against
 * pt_ledger_targets' targets (softcap as score, temperature 1): the ledger's own computation, moved to
 * the logits' device, so NOT counted as external; rescale as above, and nll is left rescaled as
 * accumulated (as score's nll_out). Nothing else may call it. */
pt_status pt_ledger_score_device_nll(pt_ledger *l, const int64_t *positions, int64_t n, double *nll,
                                     double rescale);
/* Scores n rows with NLLs the caller computed (counted in nll_external); rescale as above. */
pt_status pt_ledger_score_nll(pt_ledger *l, const int64_t *positions, int64_t n, const double *nll,
                              double rescale);
/* Grants targets [start, end) for training. tokens_out (may be NULL) receives the end-start+1 tokens
 * tokens[start-1 .. end-1] (inputs and targets of the granted span). */
pt_status pt_ledger_grant(pt_ledger *l, int64_t start, int64_t end, uint16_t *tokens_out);
/* Scored count / trained flag of one target (tests, diagnostics). */
pt_status pt_ledger_position(const pt_ledger *l, int64_t t, int *scored, int *trained, int *trained_first);

void pt_ledger_report_get(const pt_ledger *l, pt_ledger_report *r);
/* Adds b's state into a (distributed eval: each rank scores its share, then merge). Both must be
 * over the same tokens. A target scored in both is a violation (an error in legal mode, before
 * anything changes; counted in scored_multiple otherwise). */
pt_status pt_ledger_merge(pt_ledger *a, const pt_ledger *b);

/* Per-target state for merging across processes (proteus.dist.merge_ledger): arrays of n =
 * pt_ledger_ntokens entries indexed by position (entry 0 unused, 0): scored[t] (times scored),
 * trained[t] and trained_first[t] (0/1); acc = {nll_sum, byte_sum, token_count, nll_rescaled,
 * nll_external}. Ranks sum scored, take the max of the flags and sum acc, then import. */
void pt_ledger_export(const pt_ledger *l, int32_t *scored, uint8_t *trained, uint8_t *trained_first, double acc[5]);
/* Replaces l's state with merged arrays as above. In legal mode a target scored more than once (on
 * two ranks) is a PT_ERR_LEGALITY error naming the position, and nothing changes. */
pt_status pt_ledger_import(pt_ledger *l, const int32_t *scored, const uint8_t *trained, const uint8_t *trained_first,
                           const double acc[5]);

#endif
