/* cpu/fused_tmpl.h — the CPU kernels of the fused family, written once for an element type and
 * included twice by cpu/fused.c (Torch7 "generic" pattern):
 *
 *   #define real float / double  element type             #define SUF f32 / f64   name suffix
 *   #define GEMM cblas_sgemm / cblas_dgemm            #define EXP, LOG, TANH, SQRT, POW, COS, SIN
 *
 * Sums run in double for both types; values are rounded to real where the PyTorch reference rounds
 * (cos/sin tables, softcapped logits, the attention probabilities). Not compiled on its own.
 */
#define FN(name) PT_CAT(name, SUF)

/* ---------------- rms_norm ---------------- */
static pt_status FN(rms_norm)(const pt_rmsnorm_args *a) {
    const real *x = a->x;
    real *y = a->y, *rs = a->rstd;
    const int64_t n = a->n, c = a->c;
    const real scale = (real)a->scale;
    const int apply = a->scale != 1.0;
#pragma omp parallel for if (n * c > PT_FUSED_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        const real *xi = x + i * c;
        real *yi = y + i * c;
        double ss = 0;
        for (int64_t j = 0; j < c; j++) ss += (double)xi[j] * (double)xi[j];
        real r = (real)(1.0 / sqrt(ss / (double)c + a->eps));
        rs[i] = r;
        for (int64_t j = 0; j < c; j++) {
            real v = xi[j] * r;
            yi[j] = apply ? v * scale : v;
        }
    }
    return PT_OK;
}

static pt_status FN(rms_norm_bwd)(const pt_rmsnorm_args *a) {
    const real *x = a->x, *g = a->g, *rs = a->rstd;
    real *dx = a->dx;
    const int64_t n = a->n, c = a->c;
#pragma omp parallel for if (n * c > PT_FUSED_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        const real *xi = x + i * c, *gi = g + i * c;
        real *di = dx + i * c;
        double r = rs[i], dot = 0;
        for (int64_t j = 0; j < c; j++) dot += (double)gi[j] * (double)xi[j];
        double m = dot * r * r / (double)c, sr = a->scale * r;
        for (int64_t j = 0; j < c; j++) di[j] = (real)(sr * ((double)gi[j] - (double)xi[j] * m));
    }
    return PT_OK;
}

/* ---------------- rotary ---------------- */
/* cos/sin of position t for pairs j0 .. j0+nj-1, computed the way the reference does in real:
 * inv_freq = 1 / base^((2j)/r), angle = t · inv_freq. */
static void FN(rotary_table)(double base, int64_t r, int64_t t, int64_t j0, int nj, real *cs, real *sn) {
    for (int j = 0; j < nj; j++) {
        real e = (real)(2 * (j0 + j)) / (real)r;
        real inv = (real)1 / POW((real)base, e);
        real ang = (real)t * inv;
        cs[j] = COS(ang);
        sn[j] = SIN(ang);
    }
}

static pt_status FN(rotary)(const pt_rotary_args *a) {
    const real *x = a->x;
    real *y = a->y;
    const int64_t B = a->B, TT = a->T, H = a->H, D = a->D, half = a->r / 2;
    const real sgn = a->inverse ? (real)-1 : (real)1;
#pragma omp parallel for if (B * TT * H * D > PT_FUSED_OMP_MIN)
    for (int64_t t = 0; t < TT; t++) {
        real cs[64], sn[64];
        for (int64_t j0 = 0; j0 < half; j0 += 64) {
            int nj = (int)(half - j0 < 64 ? half - j0 : 64);
            FN(rotary_table)(a->base, a->r, t + a->offset, j0, nj, cs, sn);
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++) {
                    const real *xr = x + ((b * TT + t) * H + h) * D;
                    real *yr = y + ((b * TT + t) * H + h) * D;
                    for (int j = 0; j < nj; j++) {
                        real x1 = xr[j0 + j], x2 = xr[half + j0 + j], s = sgn * sn[j];
                        yr[j0 + j] = x1 * cs[j] + x2 * s;
                        yr[half + j0 + j] = -x1 * s + x2 * cs[j];
                    }
                }
        }
        /* pass-through dims */
        if (2 * half < D)
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++) {
                    const real *xr = x + ((b * TT + t) * H + h) * D;
                    real *yr = y + ((b * TT + t) * H + h) * D;
                    memcpy(yr + 2 * half, xr + 2 * half, sizeof(real) * (size_t)(D - 2 * half));
                }
    }
    return PT_OK;
}

/* ---------------- causal attention with GQA ----------------
 * Per (b, h), query rows in blocks of PT_ATT_BS: S = scale·Q_blk K[0:i1]ᵀ (one GEMM over the causal
 * prefix), row softmax with the causal mask, Y_blk = P V[0:i1]. The backward recomputes P from the
 * saved log-sum-exp and works per (b, kv group) so that dK, dV accumulate without races. */
static pt_status FN(attention)(const pt_attention_args *a) {
    const int64_t B = a->B, TT = a->T, H = a->H, Hkv = a->Hkv, D = a->D, grp = H / Hkv;
    const int64_t ldq = H * D, ldk = Hkv * D, nbh = B * H;
    const int par = nbh > 1 && (double)nbh * (double)TT * (double)TT * (double)D > 2e6;
    const int nthr = par ? omp_get_max_threads() : 1;
    real *work = malloc(sizeof(real) * (size_t)nthr * (size_t)PT_ATT_BS * (size_t)TT);
    if (!work) return PT_FAIL(PT_ERR_OOM, "attention: out of host memory for the score workspace (real = %lld)",
                              (long long)TT);
    const int blas_prev = pt_blas_serial_begin(par);
#pragma omp parallel for schedule(dynamic) num_threads(nthr) if (par)
    for (int64_t bh = 0; bh < nbh; bh++) {
        const int64_t b = bh / H, h = bh % H, gk = h / grp;
        real *S = work + (size_t)omp_get_thread_num() * PT_ATT_BS * (size_t)TT;
        const real *Q = (const real *)a->q + (b * TT * H + h) * D;
        const real *K = (const real *)a->k + (b * TT * Hkv + gk) * D;
        const real *V = (const real *)a->v + (b * TT * Hkv + gk) * D;
        real *Y = (real *)a->y + (b * TT * H + h) * D;
        real *lse = (real *)a->lse + bh * TT;
        for (int64_t i0 = 0; i0 < TT; i0 += PT_ATT_BS) {
            const int64_t m = TT - i0 < PT_ATT_BS ? TT - i0 : PT_ATT_BS, n = i0 + m;
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)D, (real)a->scale, Q + i0 * ldq,
                 (int)ldq, K, (int)ldk, (real)0, S, (int)n);
            for (int64_t ii = 0; ii < m; ii++) {
                real *row = S + ii * n;
                const int64_t t = i0 + ii;
                real mx = row[0];
                for (int64_t j = 1; j <= t; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0;
                for (int64_t j = 0; j <= t; j++) {
                    real e = EXP(row[j] - mx);
                    row[j] = e;
                    sum += (double)e;
                }
                const real inv = (real)(1.0 / sum);
                for (int64_t j = 0; j <= t; j++) row[j] *= inv;
                for (int64_t j = t + 1; j < n; j++) row[j] = 0;
                lse[t] = (real)((double)mx + log(sum));
            }
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)n, (real)1, S, (int)n, V, (int)ldk,
                 (real)0, Y + i0 * ldq, (int)ldq);
        }
    }
    pt_blas_serial_end(blas_prev);
    free(work);
    return PT_OK;
}

static pt_status FN(attention_bwd)(const pt_attention_args *a) {
    const int64_t B = a->B, TT = a->T, H = a->H, Hkv = a->Hkv, D = a->D, grp = H / Hkv;
    const int64_t ldq = H * D, ldk = Hkv * D, nbg = B * Hkv;
    const int par = nbg > 1 && (double)B * (double)H * (double)TT * (double)TT * (double)D > 1e6;
    const int nthr = par ? omp_get_max_threads() : 1;
    real *work = malloc(sizeof(real) * (size_t)nthr * 2 * (size_t)PT_ATT_BS * (size_t)TT);
    if (!work) return PT_FAIL(PT_ERR_OOM, "attention backward: out of host memory for the workspace (real = %lld)",
                              (long long)TT);
    const int blas_prev = pt_blas_serial_begin(par);
#pragma omp parallel for schedule(dynamic) num_threads(nthr) if (par)
    for (int64_t bg = 0; bg < nbg; bg++) {
        const int64_t b = bg / Hkv, gk = bg % Hkv;
        real *P = work + (size_t)omp_get_thread_num() * 2 * PT_ATT_BS * (size_t)TT;
        real *dP = P + (size_t)PT_ATT_BS * (size_t)TT;
        const real *K = (const real *)a->k + (b * TT * Hkv + gk) * D;
        const real *V = (const real *)a->v + (b * TT * Hkv + gk) * D;
        real *dK = (real *)a->dk + (b * TT * Hkv + gk) * D;
        real *dV = (real *)a->dv + (b * TT * Hkv + gk) * D;
        for (int64_t h = gk * grp; h < (gk + 1) * grp; h++) {
            const int64_t off = (b * TT * H + h) * D;
            const real *Q = (const real *)a->q + off, *Y = (const real *)a->y + off, *GY = (const real *)a->gy + off;
            real *dQ = (real *)a->dq + off;
            const real *lse = (const real *)a->lse + (b * H + h) * TT;
            for (int64_t i0 = 0; i0 < TT; i0 += PT_ATT_BS) {
                const int64_t m = TT - i0 < PT_ATT_BS ? TT - i0 : PT_ATT_BS, n = i0 + m;
                GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)D, (real)a->scale, Q + i0 * ldq,
                     (int)ldq, K, (int)ldk, (real)0, P, (int)n);
                for (int64_t ii = 0; ii < m; ii++) {
                    const int64_t t = i0 + ii;
                    real *row = P + ii * n;
                    for (int64_t j = 0; j <= t; j++) row[j] = EXP(row[j] - lse[t]);
                    for (int64_t j = t + 1; j < n; j++) row[j] = 0;
                }
                /* dV[0:n] += Pᵀ dY_blk ; dP = dY_blk V[0:n]ᵀ */
                GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)m, (real)1, P, (int)n,
                     GY + i0 * ldq, (int)ldq, (real)1, dV, (int)ldk);
                GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)D, (real)1, GY + i0 * ldq,
                     (int)ldq, V, (int)ldk, (real)0, dP, (int)n);
                for (int64_t ii = 0; ii < m; ii++) {
                    const int64_t t = i0 + ii;
                    const real *yr = Y + t * ldq, *gr = GY + t * ldq;
                    double di = 0;
                    for (int64_t d = 0; d < D; d++) di += (double)yr[d] * (double)gr[d];
                    real *pr = P + ii * n, *dr = dP + ii * n;
                    for (int64_t j = 0; j < n; j++) dr[j] = (real)((double)pr[j] * ((double)dr[j] - di));
                }
                /* dQ_blk = scale·dS K[0:n] ; dK[0:n] += scale·dSᵀ Q_blk */
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)n, (real)a->scale, dP, (int)n,
                     K, (int)ldk, (real)0, dQ + i0 * ldq, (int)ldq);
                GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)m, (real)a->scale, dP, (int)n,
                     Q + i0 * ldq, (int)ldq, (real)1, dK, (int)ldk);
            }
        }
    }
    pt_blas_serial_end(blas_prev);
    free(work);
    return PT_OK;
}

/* ---------------- XSA ---------------- */
static pt_status FN(xsa)(const pt_xsa_args *a) {
    const int64_t n = a->n, H = a->H, Hkv = a->Hkv, D = a->D, grp = H / Hkv;
    const real *y = a->y, *v = a->v;
    real *out = a->out;
#pragma omp parallel for if (n * H * D > PT_FUSED_OMP_MIN)
    for (int64_t p = 0; p < n; p++)
        for (int64_t gk = 0; gk < Hkv; gk++) {
            const real *vr = v + (p * Hkv + gk) * D;
            double nn = 0;
            for (int64_t d = 0; d < D; d++) nn += (double)vr[d] * (double)vr[d];
            const double inv = 1.0 / fmax(sqrt(nn), PT_XSA_EPS);
            for (int64_t h = gk * grp; h < (gk + 1) * grp; h++) {
                const real *yr = y + (p * H + h) * D;
                real *o = out + (p * H + h) * D;
                double c = 0;
                for (int64_t d = 0; d < D; d++) c += (double)yr[d] * (double)vr[d] * inv;
                for (int64_t d = 0; d < D; d++) o[d] = (real)((double)yr[d] - c * (double)vr[d] * inv);
            }
        }
    return PT_OK;
}

static pt_status FN(xsa_bwd)(const pt_xsa_args *a) {
    const int64_t n = a->n, H = a->H, Hkv = a->Hkv, D = a->D, grp = H / Hkv;
    const real *y = a->y, *v = a->v, *g = a->g;
    real *dy = a->dy, *dv = a->dv;
#pragma omp parallel for if (n * H * D > PT_FUSED_OMP_MIN)
    for (int64_t p = 0; p < n; p++)
        for (int64_t gk = 0; gk < Hkv; gk++) {
            const real *vr = v + (p * Hkv + gk) * D;
            double nn = 0;
            for (int64_t d = 0; d < D; d++) nn += (double)vr[d] * (double)vr[d];
            const double norm = sqrt(nn), nc = fmax(norm, PT_XSA_EPS), inv = 1.0 / nc;
            real *dvr = dv ? dv + (p * Hkv + gk) * D : NULL;
            if (dvr)
                for (int64_t d = 0; d < D; d++) dvr[d] = 0; /* holds dL/dv̂ until the end */
            for (int64_t h = gk * grp; h < (gk + 1) * grp; h++) {
                const real *yr = y + (p * H + h) * D, *gr = g + (p * H + h) * D;
                double c = 0, al = 0; /* c = y·v̂, al = g·v̂ */
                for (int64_t d = 0; d < D; d++) {
                    double vh = (double)vr[d] * inv;
                    c += (double)yr[d] * vh;
                    al += (double)gr[d] * vh;
                }
                if (dy) {
                    real *dyr = dy + (p * H + h) * D;
                    for (int64_t d = 0; d < D; d++) dyr[d] = (real)((double)gr[d] - al * (double)vr[d] * inv);
                }
                if (dvr)
                    for (int64_t d = 0; d < D; d++)
                        dvr[d] = (real)((double)dvr[d] - al * (double)yr[d] - c * (double)gr[d]);
            }
            if (dvr) {
                /* v̂ = v / max(‖v‖, eps): through the norm only where it is not clamped */
                if (norm > PT_XSA_EPS) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)dvr[d] * (double)vr[d] * inv;
                    for (int64_t d = 0; d < D; d++)
                        dvr[d] = (real)(((double)dvr[d] - dot * (double)vr[d] * inv) * inv);
                } else {
                    for (int64_t d = 0; d < D; d++) dvr[d] = (real)((double)dvr[d] * inv);
                }
            }
        }
    return PT_OK;
}

/* ---------------- relu², leaky relu², star relu ----------------
 * One loop per op over contiguous rows (the op switch is outside the loops, so they vectorise). */
static pt_status FN(act2)(const pt_act2_args *a) {
    const real *restrict x = a->x, *restrict sc = a->scale, *restrict bi = a->bias;
    real *restrict o = a->out;
    const int64_t n = a->n, c = a->c, nc = n * c;
    const real slope = (real)a->slope;
    switch (a->op) {
    case PT_ACT2_RELU2:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
        for (int64_t i = 0; i < nc; i++) {
            const real v = x[i], r = v > 0 ? v : 0;
            o[i] = r * r;
        }
        break;
    case PT_ACT2_LEAKY2:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
        for (int64_t i = 0; i < nc; i++) {
            const real v = x[i], r = v > 0 ? v : v * slope;
            o[i] = r * r;
        }
        break;
    default:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
        for (int64_t i = 0; i < n; i++) {
            const real *restrict xi = x + i * c;
            real *restrict oi = o + i * c;
            for (int64_t j = 0; j < c; j++) {
                const real v = xi[j], r = v > 0 ? v : 0;
                oi[j] = r * r * sc[j] + bi[j];
            }
        }
        break;
    }
    return PT_OK;
}

static pt_status FN(act2_bwd)(const pt_act2_args *a) {
    const real *restrict x = a->x, *restrict sc = a->scale, *restrict g = a->g;
    real *restrict dx = a->dx;
    const int64_t n = a->n, c = a->c, nc = n * c;
    const real slope = (real)a->slope;
    if (dx) {
        switch (a->op) {
        case PT_ACT2_RELU2:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
            for (int64_t i = 0; i < nc; i++) {
                const real v = x[i], gg = g[i];
                dx[i] = v > 0 ? 2 * v * gg : 0;
            }
            break;
        case PT_ACT2_LEAKY2:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
            for (int64_t i = 0; i < nc; i++) {
                const real v = x[i], gg = g[i];
                dx[i] = v > 0 ? 2 * v * gg : 2 * v * slope * slope * gg;
            }
            break;
        default:
#pragma omp parallel for if (nc > PT_FUSED_OMP_MIN)
            for (int64_t i = 0; i < n; i++) {
                const real *restrict xi = x + i * c, *restrict gi = g + i * c;
                real *restrict di = dx + i * c;
                for (int64_t j = 0; j < c; j++) {
                    const real v = xi[j], gg = gi[j];
                    di[j] = v > 0 ? 2 * v * sc[j] * gg : 0;
                }
            }
            break;
        }
    }
    if (a->op == PT_ACT2_STAR && (a->dscale || a->dbias)) {
        /* per-unit sums over rows: fixed row chunks (independent of the thread count), summed in order */
        const int64_t nch = n < PT_FUSED_CHUNKS ? (n > 0 ? n : 1) : PT_FUSED_CHUNKS;
        double *part = calloc((size_t)(nch * 2 * c), sizeof(double));
        if (!part) return PT_FAIL(PT_ERR_OOM, "star_relu backward: out of host memory (%lld units)", (long long)c);
#pragma omp parallel for if (n * c > PT_FUSED_OMP_MIN)
        for (int64_t k = 0; k < nch; k++) {
            double *ps = part + k * 2 * c, *pb = ps + c;
            for (int64_t i = n * k / nch; i < n * (k + 1) / nch; i++)
                for (int64_t j = 0; j < c; j++) {
                    double v = (double)x[i * c + j], gg = (double)g[i * c + j], r = v > 0 ? v : 0;
                    ps[j] += r * r * gg;
                    pb[j] += gg;
                }
        }
        for (int64_t j = 0; j < c; j++) {
            double s = 0, b = 0;
            for (int64_t k = 0; k < nch; k++) {
                s += part[k * 2 * c + j];
                b += part[k * 2 * c + c + j];
            }
            if (a->dscale) ((real *)a->dscale)[j] = (real)s;
            if (a->dbias) ((real *)a->dbias)[j] = (real)b;
        }
        free(part);
    }
    return PT_OK;
}

/* ---------------- softcapped cross-entropy ---------------- */
static pt_status FN(softcap_ce)(const pt_ce_args *a) {
    const real *x = a->logits;
    real *nll = a->nll, *lse = a->lse;
    const int64_t n = a->n, V = a->V;
    const real cap = (real)a->cap;
    const int capped = a->cap > 0;
    const int par = n * V > PT_FUSED_OMP_MIN / 4;
    const int nthr = par ? omp_get_max_threads() : 1;
    /* the capped row, computed once per element (one tanh) and read by the max and the sum */
    real *zbuf = capped ? malloc(sizeof(real) * (size_t)nthr * (size_t)V) : NULL;
    if (capped && !zbuf)
        return PT_FAIL(PT_ERR_OOM, "softcap_cross_entropy: out of host memory for a row buffer (V = %lld)",
                       (long long)V);
#pragma omp parallel for num_threads(nthr) if (par)
    for (int64_t i = 0; i < n; i++) {
        const real *xi = x + i * V;
        const real *z = xi;
        if (capped) {
            real *zw = zbuf + (size_t)omp_get_thread_num() * (size_t)V;
            for (int64_t j = 0; j < V; j++) zw[j] = cap * TANH(xi[j] / cap);
            z = zw;
        }
        real mx = -INFINITY;
        for (int64_t j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += exp((double)z[j] - (double)mx);
        const double l = (double)mx + log(sum);
        const int64_t y = a->targets[i];
        lse[i] = (real)l;
        nll[i] = (real)(l - (double)z[y]);
    }
    free(zbuf);
    return PT_OK;
}

static pt_status FN(softcap_ce_bwd)(const pt_ce_args *a) {
    const real *x = a->logits, *lse = a->lse, *g = a->g;
    real *dx = a->dlogits;
    const int64_t n = a->n, V = a->V;
    const real cap = (real)a->cap;
    const int capped = a->cap > 0;
#pragma omp parallel for if (n * V > PT_FUSED_OMP_MIN / 4)
    for (int64_t i = 0; i < n; i++) {
        const real *xi = x + i * V;
        real *di = dx + i * V;
        const double gi = (double)g[i * a->gstride] * a->gscale, l = (double)lse[i];
        const int64_t y = a->targets[i];
        for (int64_t j = 0; j < V; j++) {
            double th = capped ? (double)TANH(xi[j] / cap) : 0;
            double z = capped ? (double)(cap * (real)th) : (double)xi[j];
            double p = exp(z - l) - (j == y ? 1.0 : 0.0);
            di[j] = (real)(gi * p * (capped ? 1.0 - th * th : 1.0));
        }
    }
    return PT_OK;
}

/* ---------------- smear gate ---------------- */
static pt_status FN(smear_gate)(const pt_smear_args *a) {
    const int64_t B = a->B, TT = a->T, C = a->C;
    const real *x = a->x, *gt = a->gate;
    real *y = a->y;
#pragma omp parallel for if (B * TT * C > PT_FUSED_OMP_MIN)
    for (int64_t bt = 0; bt < B * TT; bt++) {
        const int64_t t = bt % TT;
        const real *xr = x + bt * C, *xp = t > 0 ? xr - C : NULL;
        real *yr = y + bt * C;
        for (int64_t c = 0; c < C; c++) {
            real s = (real)1 / ((real)1 + EXP(-gt[c]));
            yr[c] = ((real)1 - s) * xr[c] + (xp ? s * xp[c] : (real)0);
        }
    }
    return PT_OK;
}

static pt_status FN(smear_gate_bwd)(const pt_smear_args *a) {
    const int64_t B = a->B, TT = a->T, C = a->C;
    const real *x = a->x, *gt = a->gate, *gy = a->gy;
    if (a->dx) {
        real *dx = a->dx;
#pragma omp parallel for if (B * TT * C > PT_FUSED_OMP_MIN)
        for (int64_t bt = 0; bt < B * TT; bt++) {
            const int64_t t = bt % TT;
            const real *gr = gy + bt * C, *gn = t + 1 < TT ? gr + C : NULL;
            real *dr = dx + bt * C;
            for (int64_t c = 0; c < C; c++) {
                real s = (real)1 / ((real)1 + EXP(-gt[c]));
                dr[c] = ((real)1 - s) * gr[c] + (gn ? s * gn[c] : (real)0);
            }
        }
    }
    if (a->dgate) {
        double *part = calloc((size_t)(B * C), sizeof(double));
        if (!part) return PT_FAIL(PT_ERR_OOM, "smear_gate backward: out of host memory (%lld channels)", (long long)C);
#pragma omp parallel for if (B * TT * C > PT_FUSED_OMP_MIN)
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < TT; t++) {
                const real *xr = x + (b * TT + t) * C, *gr = gy + (b * TT + t) * C;
                for (int64_t c = 0; c < C; c++)
                    part[b * C + c] += (double)gr[c] * ((t > 0 ? (double)xr[c - C] : 0.0) - (double)xr[c]);
            }
        for (int64_t c = 0; c < C; c++) {
            double s = 1.0 / (1.0 + exp(-(double)gt[c])), acc = 0;
            for (int64_t b = 0; b < B; b++) acc += part[b * C + c];
            ((real *)a->dgate)[c] = (real)(acc * s * (1.0 - s));
        }
        free(part);
    }
    return PT_OK;
}

/* ---------------- batched LoRA ---------------- */
static pt_status FN(lora)(const pt_lora_args *a) {
    const int64_t TT = a->T, in = a->in, out = a->out, R = a->R;
    for (int64_t b = 0; b < a->B; b++) {
        const real *x = (const real *)a->x + b * TT * in, *A = (const real *)a->A + b * R * in;
        const real *Bw = (const real *)a->Bw + b * out * R;
        real *h = (real *)a->h + b * TT * R, *y = (real *)a->y + b * TT * out;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TT, (int)R, (int)in, (real)1, x, (int)in, A, (int)in, (real)0,
             h, (int)R);
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TT, (int)out, (int)R, (real)1, h, (int)R, Bw, (int)R, (real)0,
             y, (int)out);
    }
    return PT_OK;
}

static pt_status FN(lora_bwd)(const pt_lora_args *a) {
    const int64_t TT = a->T, in = a->in, out = a->out, R = a->R;
    real *dh = malloc(sizeof(real) * (size_t)(TT * R));
    if (!dh) return PT_FAIL(PT_ERR_OOM, "lora backward: out of host memory (real = %lld, rank %lld)", (long long)TT,
                            (long long)R);
    for (int64_t b = 0; b < a->B; b++) {
        const real *x = (const real *)a->x + b * TT * in, *A = (const real *)a->A + b * R * in;
        const real *Bw = (const real *)a->Bw + b * out * R, *h = (const real *)a->h + b * TT * R;
        const real *gy = (const real *)a->gy + b * TT * out;
        if (a->dBw) /* dBw = gyᵀ h */
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)R, (int)TT, (real)1, gy, (int)out, h, (int)R,
                 (real)0, (real *)a->dBw + b * out * R, (int)R);
        if (!a->dA && !a->dx) continue;
        /* dh = gy Bw */
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)TT, (int)R, (int)out, (real)1, gy, (int)out, Bw, (int)R,
             (real)0, dh, (int)R);
        if (a->dA) /* dA = dhᵀ x */
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)in, (int)TT, (real)1, dh, (int)R, x, (int)in,
                 (real)0, (real *)a->dA + b * R * in, (int)in);
        if (a->dx) /* dx = dh A */
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)TT, (int)in, (int)R, (real)1, dh, (int)R, A, (int)in,
                 (real)0, (real *)a->dx + b * TT * in, (int)in);
    }
    free(dh);
    return PT_OK;
}

#undef FN
