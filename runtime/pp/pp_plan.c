/* pp_plan.c - stage plans and the pipeline schedule (see pp_plan.h). */
#include "runtime/pp/pp_plan.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sk_status check_counts(int n_blocks, int n_stages)
{
    SK_CHECK(n_stages >= 1 && n_stages <= SK_PP_MAX_STAGES, SK_E_INVALID_ARG,
             "pipeline: %d stages; expected 1..%d", n_stages, SK_PP_MAX_STAGES);
    SK_CHECK(n_blocks >= 1, SK_E_INVALID_ARG, "pipeline: a model of %d blocks", n_blocks);
    SK_CHECK(n_stages <= n_blocks, SK_E_INVALID_ARG,
             "pipeline: %d stages for a model of %d blocks; every stage needs at least one "
             "block (use at most %d GPUs / stages)", n_stages, n_blocks, n_blocks);
    return SK_OK;
}

static void fill_costs(sk_pp_plan *p, const double *bc, double embed, double head)
{
    for (int k = 0; k < p->n_stages; k++) {
        double c = 0;
        for (int b = p->first[k]; b < p->last[k]; b++) c += bc ? bc[b] : 1.0;
        if (k == 0) c += embed;
        if (k == p->n_stages - 1) c += head;
        p->cost[k] = c;
    }
}

sk_status sk_pp_plan_balanced(int n_blocks, int n_stages, const double *bc, double embed,
                              double head, sk_pp_plan *out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_pp_plan_balanced: NULL argument");
    memset(out, 0, sizeof *out);
    SK_TRY(check_counts(n_blocks, n_stages));
    for (int b = 0; bc && b < n_blocks; b++)
        SK_CHECK(bc[b] >= 0 && bc[b] < DBL_MAX, SK_E_INVALID_ARG,
                 "pipeline: block %d has cost %g; expected a finite value >= 0", b, bc[b]);
    SK_CHECK(embed >= 0 && head >= 0, SK_E_INVALID_ARG, "pipeline: negative embed/head cost");
    const int L = n_blocks, K = n_stages;
    double *pre = calloc((size_t)L + 1, sizeof *pre);
    /* best[k][i]: (max, sum of squares) of the best split of blocks [0, i) into k+1 stages */
    double *bmax = malloc(sizeof(double) * (size_t)K * (size_t)(L + 1));
    double *bsq = malloc(sizeof(double) * (size_t)K * (size_t)(L + 1));
    int *from = malloc(sizeof(int) * (size_t)K * (size_t)(L + 1));
    if (!pre || !bmax || !bsq || !from) {
        free(pre); free(bmax); free(bsq); free(from);
        return SK_ERR(SK_E_OOM, "pipeline plan: out of host memory");
    }
    for (int i = 0; i < L; i++) pre[i + 1] = pre[i] + (bc ? bc[i] : 1.0);
#define AT(a, k, i) (a)[(size_t)(k) * (size_t)(L + 1) + (size_t)(i)]
    for (int k = 0; k < K; k++)
        for (int i = 0; i <= L; i++) {
            AT(bmax, k, i) = DBL_MAX;
            AT(bsq, k, i) = DBL_MAX;
            AT(from, k, i) = -1;
        }
    for (int i = 1; i <= L; i++) {
        double c = pre[i] + embed + (K == 1 && i == L ? head : 0);
        AT(bmax, 0, i) = c;
        AT(bsq, 0, i) = c * c;
        AT(from, 0, i) = 0;
    }
    for (int k = 1; k < K; k++)
        for (int i = k + 1; i <= L; i++)
            for (int j = k; j < i; j++) { /* stage k gets blocks [j, i) */
                if (AT(from, k - 1, j) < 0) continue;
                double c = pre[i] - pre[j] + (k == K - 1 && i == L ? head : 0);
                double mx = AT(bmax, k - 1, j) > c ? AT(bmax, k - 1, j) : c;
                double sq = AT(bsq, k - 1, j) + c * c;
                /* strictly better max, or the same max with a smaller spread;
                 * ties keep the earliest j (deterministic) */
                const double eps = 1e-12 * (mx > 1 ? mx : 1);
                if (mx < AT(bmax, k, i) - eps ||
                    (mx <= AT(bmax, k, i) + eps && sq < AT(bsq, k, i) - eps)) {
                    AT(bmax, k, i) = mx;
                    AT(bsq, k, i) = sq;
                    AT(from, k, i) = j;
                }
            }
    out->n_stages = K;
    out->n_blocks = L;
    int i = L;
    for (int k = K - 1; k >= 0; k--) {
        int j = AT(from, k, i);
        out->first[k] = j;
        out->last[k] = i;
        i = j;
    }
#undef AT
    free(pre); free(bmax); free(bsq); free(from);
    fill_costs(out, bc, embed, head);
    return SK_OK;
}

sk_status sk_pp_plan_from_sizes(int n_blocks, int n_stages, const int *sizes, sk_pp_plan *out)
{
    SK_CHECK(out && sizes, SK_E_INVALID_ARG, "sk_pp_plan_from_sizes: NULL argument");
    memset(out, 0, sizeof *out);
    SK_TRY(check_counts(n_blocks, n_stages));
    int b = 0;
    for (int k = 0; k < n_stages; k++) {
        SK_CHECK(sizes[k] >= 1, SK_E_INVALID_ARG,
                 "pipeline split: stage %d gets %d blocks; every stage needs at least one", k,
                 sizes[k]);
        out->first[k] = b;
        b += sizes[k];
        out->last[k] = b;
    }
    SK_CHECK(b == n_blocks, SK_E_INVALID_ARG,
             "pipeline split: the stages hold %d blocks; the model has %d", b, n_blocks);
    out->n_stages = n_stages;
    out->n_blocks = n_blocks;
    fill_costs(out, NULL, 0, 0);
    return SK_OK;
}

sk_status sk_pp_plan_parse(const char *text, int n_blocks, int n_stages, sk_pp_plan *out)
{
    SK_CHECK(text && out, SK_E_INVALID_ARG, "sk_pp_plan_parse: NULL argument");
    int sizes[SK_PP_MAX_STAGES + 1], n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        SK_CHECK(end != p && v >= 1 && v <= 100000 && n <= SK_PP_MAX_STAGES, SK_E_INVALID_ARG,
                 "pipeline split '%s': expected blocks per stage, e.g. 10,10,10", text);
        sizes[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else SK_CHECK(*p == 0, SK_E_INVALID_ARG,
                      "pipeline split '%s': expected blocks per stage, e.g. 10,10,10", text);
    }
    SK_CHECK(n == n_stages, SK_E_INVALID_ARG,
             "pipeline split '%s' names %d stages; the pipeline has %d", text, n, n_stages);
    return sk_pp_plan_from_sizes(n_blocks, n_stages, sizes, out);
}

const char *sk_pp_plan_str(const sk_pp_plan *p, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap) buf[0] = 0;
    for (int k = 0; k < p->n_stages && o < cap; k++) {
        int w = snprintf(buf + o, cap - o, "%s%d-%d", k ? " | " : "", p->first[k], p->last[k] - 1);
        if (w < 0) break;
        o += (size_t)w;
    }
    return buf;
}

void sk_pp_cost_estimate(int64_t D, int64_t ffn, int64_t in_dim, int64_t text_len, int64_t F,
                         int64_t S, int64_t kv_frames, double *block, double *embed, double *head)
{
    const double N = (double)(F * S), d = (double)D;
    /* self-attention q k v o + cross-attention q o + FFN, then the two attentions */
    double b = 8 * N * d * d + 4 * N * d * d + 4 * N * d * (double)ffn +
               4 * N * (double)(kv_frames * S) * d + 4 * N * (double)text_len * d;
    if (block) *block = b;
    if (embed) *embed = 2 * N * 4 * (double)in_dim * d;
    if (head) *head = 2 * N * d * 4 * (double)in_dim;
}

/* ---- schedule ---- */

int64_t sk_pp_sched_count(const sk_pp_sched *s)
{
    if (s->n_chunks <= 0) return INT64_MAX;
    return s->n_chunks * (int64_t)(s->steps + 1) * s->n_lanes;
}

sk_pp_task sk_pp_sched_task(const sk_pp_sched *s, int64_t i)
{
    const int64_t per_chunk = (int64_t)(s->steps + 1) * s->n_lanes;
    sk_pp_task t;
    t.chunk = (int)(i / per_chunk);
    int64_t r = i % per_chunk;
    t.pass = (int)(r / s->n_lanes);
    t.lane = (int)(r % s->n_lanes);
    return t;
}

int64_t sk_pp_sched_index(const sk_pp_sched *s, sk_pp_task t)
{
    return ((int64_t)t.chunk * (s->steps + 1) + t.pass) * s->n_lanes + t.lane;
}

int sk_pp_sched_deps(const sk_pp_sched *s, int64_t i, int k, int64_t dep_task[4], int dep_stage[4])
{
    sk_pp_task t = sk_pp_sched_task(s, i);
    int n = 0;
    if (k > 0) { /* (A) */
        dep_task[n] = i;
        dep_stage[n++] = k - 1;
    }
    if (k == 0 && t.pass > 0) { /* (B) */
        sk_pp_task d = t;
        d.pass--;
        dep_task[n] = sk_pp_sched_index(s, d);
        dep_stage[n++] = s->n_stages - 1;
    }
    if (t.pass == 0 && t.chunk > 0) { /* (C) */
        sk_pp_task d = t;
        d.chunk--;
        d.pass = s->steps;
        dep_task[n] = sk_pp_sched_index(s, d);
        dep_stage[n++] = k;
    }
    if (i > 0) { /* (D) */
        dep_task[n] = i - 1;
        dep_stage[n++] = k;
    }
    return n;
}

sk_status sk_pp_simulate(const sk_pp_sched *s, const double *pass_cost, const double *clean_cost,
                         double sampler_cost, double link_cost, double *start, double *end,
                         sk_pp_sim_result *res)
{
    SK_CHECK(s && pass_cost && clean_cost && res, SK_E_INVALID_ARG, "sk_pp_simulate: NULL argument");
    SK_CHECK(s->n_stages >= 1 && s->n_stages <= SK_PP_MAX_STAGES && s->n_lanes >= 1 &&
                 s->steps >= 1 && s->n_chunks >= 1 && s->n_chunks <= 1000000,
             SK_E_INVALID_ARG, "sk_pp_simulate: a bounded schedule is needed");
    const int K = s->n_stages;
    const int64_t n = sk_pp_sched_count(s);
    double *st = start ? start : malloc(sizeof(double) * (size_t)(n * K));
    double *en = end ? end : malloc(sizeof(double) * (size_t)(n * K));
    double *done = calloc((size_t)s->n_chunks * (size_t)s->n_lanes, sizeof *done);
    if (!st || !en || !done) {
        if (!start) free(st);
        if (!end) free(en);
        free(done);
        return SK_ERR(SK_E_OOM, "sk_pp_simulate: out of host memory");
    }
    memset(res, 0, sizeof *res);
    for (int64_t i = 0; i < n; i++) {
        sk_pp_task t = sk_pp_sched_task(s, i);
        for (int k = 0; k < K; k++) {
            int64_t dt[4];
            int ds[4];
            int nd = sk_pp_sched_deps(s, i, k, dt, ds);
            double ready = 0;
            for (int j = 0; j < nd; j++) {
                /* a dependency on another stage is a message over a link: the hidden
                 * state (A) or the latents (B) */
                double e = en[dt[j] * K + ds[j]] + (ds[j] != k ? link_cost : 0);
                if (e > ready) ready = e;
            }
            double c = t.pass == s->steps ? clean_cost[k] : pass_cost[k];
            if (k == K - 1 && t.pass < s->steps) c += sampler_cost;
            st[i * K + k] = ready;
            en[i * K + k] = ready + c;
            res->busy[k] += c;
            if (k == K - 1 && t.pass == s->steps - 1) done[(size_t)t.chunk * s->n_lanes + t.lane] = ready + c;
            if (ready + c > res->makespan) res->makespan = ready + c;
        }
    }
    for (int k = 0; k < K; k++) res->busy[k] = res->makespan > 0 ? res->busy[k] / res->makespan : 0;
    /* steady state: lane 0's x0 outputs over the second half */
    int64_t c0 = s->n_chunks / 2, c1 = s->n_chunks - 1;
    if (c1 > c0) res->chunk_period = (done[c1 * s->n_lanes] - done[c0 * s->n_lanes]) / (double)(c1 - c0);
    else res->chunk_period = done[c1 * s->n_lanes];
    if (!start) free(st);
    if (!end) free(en);
    free(done);
    return SK_OK;
}
