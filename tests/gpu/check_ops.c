/* check_ops.c - every CUDA op against the CPU reference, then per-op timings.
 *
 * Part 1 (correctness): every case of the shared table (tests/common/op_cases.h)
 * plus the DiT/TAEHV-shaped cases below runs on the CPU backend (the oracle)
 * and on the CUDA backend in both activation modes (bf16 and f32) with the same
 * seeded inputs; outputs are compared with the case's (class, dtype) bound.
 * Part 2: the tensor-core attention kernel against the generic f32 kernel at
 * the real 1.3B shape (too big for the CPU oracle).
 * Part 3 (timing): the ops at the real 1.3B shapes, median of --reps runs
 * timed with CUDA events on the backend's stream.
 *
 * usage: gpu_check_ops [--op NAME|CASE[,...]] [--seed N] [--list] [--reps N] [--no-time]
 *                      [--quick]   (shared table only, no big cases: for compute-sanitizer)
 * Exit status: 0 all pass, 1 a case failed, 2 setup error (no GPU, ...).
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/backend.h"
#include "tests/common/compare.h"
#include "tests/common/op_cases.h"

#define BF16 SK_DTYPE_BF16
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* Real-model shapes, scaled so the CPU oracle stays within seconds:
 * 1.3B DiT: D=1536, FFN 8960, 12 heads x 128, 1560 tokens per frame
 * (Hp=30, Wp=52 at 480x832), chunk of 3 frames; TAEHV 3x3 convs at 64 ch. */
static const sk_op_case k_dit_cases[] = {
    {"dit_linear_qkv_157x1536x1536", "linear", SK_OPC_MATMUL, BF16, BF16, {157, 1536, 1536},
     {SK_ACT_NONE, 1}},
    {"dit_linear_ffn1_37x1536x8960_gelu", "linear", SK_OPC_MATMUL, BF16, BF16, {37, 1536, 8960},
     {SK_ACT_GELU_TANH, 1}},
    {"dit_linear_ffn2_37x8960x1536", "linear", SK_OPC_MATMUL, BF16, BF16, {37, 8960, 1536},
     {SK_ACT_NONE, 1}},
    /* f32 weights into a bf16 backend are rounded to bf16 by the backend: a
     * short K keeps that extra rounding inside the bf16 bound */
    {"dit_linear_w_f32_29x64x8960_gelu", "linear", SK_OPC_MATMUL, BF16, SK_DTYPE_F32,
     {29, 64, 8960}, {SK_ACT_GELU_TANH, 1}},
    {"dit_modulate_ln_3x1560x1536", "modulate", SK_OPC_NORM, BF16, BF16, {3, 1560, 1536, 6},
     {0, 1, 1}, {1e-6f}},
    {"dit_modulate_ln_ffn_3x1560x1536", "modulate", SK_OPC_NORM, BF16, BF16, {3, 1560, 1536, 6},
     {3, 4, 1}, {1e-6f}},
    {"dit_gated_add_3x1560x1536", "gated_add", SK_OPC_ELEMENTWISE, BF16, BF16,
     {3, 1560, 1536, 6}, {2}},
    {"dit_rmsnorm_qk_4680x1536", "rmsnorm", SK_OPC_NORM, BF16, BF16, {4680, 1536}, {1},
     {1e-6f}},
    {"dit_layernorm_4680x1536_affine", "layernorm", SK_OPC_NORM, BF16, BF16, {4680, 1536},
     {1, 1}, {1e-6f}},
    {"dit_rope3d_3x30x52_12h_128d_t6", "rope3d", SK_OPC_ELEMENTWISE, BF16, BF16,
     {3, 30, 52, 12, 128, 6}},
    {"dit_attention_390q_2h_128d_1560+1563k", "attention", SK_OPC_ATTENTION, BF16, BF16,
     {390, 2, 128, 1560, 1563}, {2, 0}},
    {"dit_attention_cross_301q_2h_128d_512k", "attention", SK_OPC_ATTENTION, BF16, BF16,
     {301, 2, 128, 512}, {1, 0}},
    {"t5_attention_77q_3h_64d_77k_bias", "attention", SK_OPC_ATTENTION, BF16, BF16,
     {77, 3, 64, 77}, {1, 1}, {1.0f}},
    {"dit_patchify_3x16x60x104", "patchify", SK_OPC_EXACT, BF16, BF16, {3, 16, 60, 104}},
    {"dit_unpatchify_3x16x60x104", "unpatchify", SK_OPC_EXACT, BF16, BF16, {3, 16, 60, 104}},
    {"dit_noise_3x16x60x104_f9_s2", "noise", SK_OPC_NOISE, BF16, BF16, {3, 16, 60, 104, 9},
     {2}},
    {"taehv_conv_64to64_60x104_k3p1", "conv2d", SK_OPC_MATMUL, BF16, BF16,
     {1, 64, 60, 104, 64, 3, 3}, {1, 1, 1}},
    {"taehv_conv_64to64_31x53_k1", "conv2d", SK_OPC_MATMUL, BF16, BF16,
     {1, 64, 31, 53, 64, 1, 1}, {1, 0, 1}},
    {"taehv_conv_16to64_61x103_k3s2p1", "conv2d", SK_OPC_MATMUL, BF16, BF16,
     {2, 16, 61, 103, 64, 3, 3}, {2, 1, 1}},
};
#pragma GCC diagnostic pop
#define N_DIT ((int)(sizeof k_dit_cases / sizeof k_dit_cases[0]))

static int quick;
static int n_total(void) { return sk_op_case_count() + (quick ? 0 : N_DIT); }
static const sk_op_case *case_at(int i)
{
    return i < sk_op_case_count() ? sk_op_case_get(i) : &k_dit_cases[i - sk_op_case_count()];
}

/* filt: comma-separated list of op names or name substrings */
static int matches_name(const char *op, const char *name, const char *filt)
{
    if (!filt) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", filt);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if ((op && strcmp(op, tok) == 0) || strstr(name, tok) != NULL) return 1;
    return 0;
}
static int matches(const sk_op_case *c, const char *filt)
{
    return matches_name(c->op, c->name, filt);
}


/* ---- part 1: CPU vs CUDA on the case table ------------------------------- */

static int check_cases(sk_backend *cpu, sk_backend *gpu[2], const char *filt, uint32_t seed,
                       int *n_run)
{
    int fails = 0;
    printf("%-16s | %-8s | %-40s | %9s | %9s | %7s | %s\n", "op", "be/case", "case", "nmse",
           "max_rel", "%bound", "result");
    for (int i = 0; i < n_total(); i++) {
        const sk_op_case *c = case_at(i);
        if (!matches(c, filt)) continue;
        float *ref = NULL;
        size_t nr = 0;
        int have_ref = 0;
        for (int g = 0; g < 2; g++) {
            if (!gpu[g] || !sk_op_case_runs_on(c, gpu[g])) continue;
            if (!have_ref) {
                if (sk_op_case_run(c, cpu, seed, &ref, &nr) != SK_OK) {
                    printf("%-16s | %-8s | %-40s | CPU reference failed: %s\n", c->op, "cpu",
                           c->name, sk_error_message());
                    fails++;
                    break;
                }
                have_ref = 1;
            }
            char dt[24];
            snprintf(dt, sizeof dt, "%s/%s", sk_dtype_name(gpu[g]->act_dtype),
                     sk_dtype_name(c->dtype));
            float *got = NULL;
            size_t ng = 0;
            (*n_run)++;
            if (sk_op_case_run(c, gpu[g], seed, &got, &ng) != SK_OK) {
                printf("%-16s | %-8s | %-40s | CUDA failed: %s | FAIL\n", c->op, dt, c->name,
                       sk_error_message());
                fails++;
                continue;
            }
            if (ng != nr) {
                printf("%-16s | %-8s | %-40s | %zu outputs vs %zu on CPU | FAIL\n", c->op, dt,
                       c->name, ng, nr);
                fails++;
                free(got);
                continue;
            }
            sk_op_bounds b = sk_op_case_bounds(c);
            sk_compare_result r = sk_compare(got, ref, nr, b.nmse, b.atol, b.rtol);
            printf("%-16s | %-8s | %-40s | %9.2e | %9.2e | %6.1f%% | %s\n", c->op, dt, c->name,
                   r.nmse, r.max_rel, r.pct_of_bound, r.ok ? "PASS" : "FAIL");
            if (!r.ok) {
                char buf[512];
                sk_compare_format(&r, got, ref, buf, sizeof buf);
                printf("    %s\n", buf);
                fails++;
            }
            free(got);
        }
        free(ref);
    }
    return fails;
}

/* ---- shared helpers for parts 2 and 3 ------------------------------------ */

#define MAXT 16
typedef struct {
    sk_backend *be;
    sk_tensor t[MAXT];
    int n;
    uint64_t seed;
} pool;

static sk_tensor *rnd(pool *p, sk_dtype dt, int nd, const int64_t *shape, float scale)
{
    if (p->n >= MAXT) return NULL;
    sk_tensor *t = &p->t[p->n];
    if (sk_tensor_alloc(p->be, dt, nd, shape, t) != SK_OK) return NULL;
    p->n++;
    if (sk_dtype_is_float(dt)) {
        /* normal noise on the device, then scaled: no host round trip */
        if (sk_op_noise(p->be, t, p->seed++, 0, 77) != SK_OK) return NULL;
        if (scale != 1.0f && sk_op_axpby(p->be, t, scale, t, 0.0f, t) != SK_OK) return NULL;
    }
    return t;
}
static void pool_free(pool *p)
{
    for (int i = 0; i < p->n; i++) sk_tensor_free(&p->t[i]);
    p->n = 0;
}
#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* ---- part 2: flash vs generic attention at the real shape ---------------- */

/* nr: 1, 2 or 3 KV ranges of one cache (18720 keys in all); env: "NAME=VALUE"
 * set for the fast run (the own kernels instead of cuDNN, say) or NULL */
static int check_attention_full(sk_backend *be, int nr, const char *env)
{
    pool p = {be, {{0}}, 0, 1234};
    const int64_t Nq = 4680, NH = 12, HD = 128, cap = 21000;
    sk_tensor *q = rnd(&p, be->act_dtype, 3, SH(Nq, NH, HD), 1.0f);
    sk_tensor *k = rnd(&p, be->act_dtype, 3, SH(cap, NH, HD), 1.0f);
    sk_tensor *v = rnd(&p, be->act_dtype, 3, SH(cap, NH, HD), 1.0f);
    sk_tensor *o1 = rnd(&p, be->act_dtype, 2, SH(Nq, NH * HD), 1.0f);
    sk_tensor *o2 = rnd(&p, be->act_dtype, 2, SH(Nq, NH * HD), 1.0f);
    int fails = 0;
    if (!q || !k || !v || !o1 || !o2) {
        printf("attention full-shape check: setup failed: %s | FAIL\n", sk_error_message());
        pool_free(&p);
        return 1;
    }
    /* 2 ranges: sink rows [0, 4680) + window rows [6000, 20040) of one cache;
     * 3: the window split in two non-adjacent parts; 1: rows [100, 18820) */
    sk_kv_range rg2[2] = {{k, v, 0, 4680}, {k, v, 6000, 14040}};
    sk_kv_range rg3[3] = {{k, v, 0, 4680}, {k, v, 11000, 9360}, {k, v, 6000, 4680}};
    sk_kv_range rg1[1] = {{k, v, 100, 18720}};
    sk_kv_range *rg = nr == 1 ? rg1 : nr == 3 ? rg3 : rg2;
    char envname[64] = "";
    if (env) {
        const char *eq = strchr(env, '=');
        snprintf(envname, sizeof envname, "%.*s", (int)(eq - env), env);
    }
    const float scale = (float)(1.0 / sqrt((double)HD)) * 2.0f;
    size_t n = (size_t)Nq * NH * HD;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    sk_status st = a && b ? SK_OK : SK_E_OOM;
    if (envname[0]) setenv(envname, strchr(env, '=') + 1, 1);
    if (st == SK_OK) st = sk_op_attention(be, o1, q, rg, nr, scale, NULL);
    if (envname[0]) unsetenv(envname);
    if (st == SK_OK) st = sk_tensor_download_f32(o1, a, n);
    setenv("SK_CUDA_ATTN_GENERIC", "1", 1);
    if (st == SK_OK) st = sk_op_attention(be, o2, q, rg, nr, scale, NULL);
    unsetenv("SK_CUDA_ATTN_GENERIC");
    if (st == SK_OK) st = sk_tensor_download_f32(o2, b, n);
    if (st != SK_OK) {
        printf("attention full-shape check: %s | FAIL\n", sk_error_message());
        fails = 1;
    } else {
        sk_op_case fake;
        memset(&fake, 0, sizeof fake);
        fake.op = "attention";
        fake.cls = SK_OPC_ATTENTION;
        fake.dtype = be->act_dtype;
        sk_op_bounds bd = sk_op_case_bounds(&fake);
        sk_compare_result r = sk_compare(a, b, n, bd.nmse, bd.atol, bd.rtol);
        char what[96];
        snprintf(what, sizeof what, "fast vs generic q4680 kv18720 %dr 12x128%s%s", nr,
                 env ? " " : "", env ? env : "");
        printf("%-16s | %-8s | %-40s | %9.2e | %9.2e | %6.1f%% | %s\n", "attention",
               sk_dtype_name(be->act_dtype), what, r.nmse, r.max_rel, r.pct_of_bound,
               r.ok ? "PASS" : "FAIL");
        if (!r.ok) {
            char buf[512];
            sk_compare_format(&r, a, b, buf, sizeof buf);
            printf("    %s\n", buf);
            fails = 1;
        }
    }
    free(a);
    free(b);
    pool_free(&p);
    return fails;
}

/* Attention recorded in a CUDA graph (cuda_graph.cu) and replayed: a shape run
 * once before recording (cuDNN on Hopper: plans built, buffer sized) must
 * replay bit for bit; a shape first seen while recording (the own kernel
 * takes it) must match the eager result within the bf16 bound. */
static int check_attention_graph(sk_backend *be)
{
    if (!be->ops->graph_begin) {
        printf("attention graph check: backend has no graphs | SKIP\n");
        return 0;
    }
    pool p = {be, {{0}}, 0, 4321};
    const int64_t Nq = 4680, NH = 12, HD = 128, cap = 21000;
    sk_tensor *q = rnd(&p, be->act_dtype, 3, SH(Nq, NH, HD), 1.0f);
    sk_tensor *k = rnd(&p, be->act_dtype, 3, SH(cap, NH, HD), 1.0f);
    sk_tensor *v = rnd(&p, be->act_dtype, 3, SH(cap, NH, HD), 1.0f);
    sk_tensor *o1 = rnd(&p, be->act_dtype, 2, SH(Nq, NH * HD), 1.0f);
    sk_tensor *o2 = rnd(&p, be->act_dtype, 2, SH(Nq, NH * HD), 1.0f);
    if (!q || !k || !v || !o1 || !o2) {
        printf("attention graph check: setup failed: %s | FAIL\n", sk_error_message());
        pool_free(&p);
        return 1;
    }
    const size_t n = (size_t)Nq * NH * HD;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    const float scale = (float)(1.0 / sqrt((double)HD));
    int fails = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: run eagerly first; pass 1: range lengths never run before */
        sk_kv_range rg0[2] = {{k, v, 0, 4680}, {k, v, 6000, 14040}};
        sk_kv_range rg1[3] = {{k, v, 0, 4616}, {k, v, 11000, 9300}, {k, v, 6000, 4700}};
        sk_kv_range *rg = pass ? rg1 : rg0;
        const int nr = pass ? 3 : 2;
        const char key[] = "check_attention_graph";
        sk_status st = a && b ? SK_OK : SK_E_OOM;
        if (st == SK_OK && !pass) st = sk_op_attention(be, o1, q, rg, nr, scale, NULL);
        if (st == SK_OK) st = be->ops->graph_begin(be);
        if (st == SK_OK) {
            sk_status s2 = sk_op_attention(be, o2, q, rg, nr, scale, NULL);
            st = be->ops->graph_end(be, key, pass + sizeof key - 1, s2 != SK_OK);
            if (s2 != SK_OK) st = s2;
        }
        if (st == SK_OK) st = be->ops->graph_launch(be, key, pass + sizeof key - 1);
        if (st == SK_OK) st = sk_tensor_download_f32(o2, b, n);
        if (st == SK_OK && pass) st = sk_op_attention(be, o1, q, rg, nr, scale, NULL);
        if (st == SK_OK) st = sk_tensor_download_f32(o1, a, n);
        if (st != SK_OK) {
            printf("attention graph check (pass %d): %s | FAIL\n", pass, sk_error_message());
            fails++;
            continue;
        }
        if (!pass) {
            size_t diff = 0;
            for (size_t i = 0; i < n; i++) diff += a[i] != b[i] || b[i] != b[i];
            printf("%-16s | %-8s | %-40s | %zu of %zu elements differ | %s\n", "attention",
                   sk_dtype_name(be->act_dtype), "graph replay vs eager q4680 kv18720 2r", diff,
                   n, diff ? "FAIL" : "PASS");
            fails += diff != 0;
        } else {
            sk_op_case fake;
            memset(&fake, 0, sizeof fake);
            fake.op = "attention";
            fake.cls = SK_OPC_ATTENTION;
            fake.dtype = be->act_dtype;
            sk_op_bounds bd = sk_op_case_bounds(&fake);
            sk_compare_result r = sk_compare(b, a, n, bd.nmse, bd.atol, bd.rtol);
            printf("%-16s | %-8s | %-40s | %9.2e | %9.2e | %6.1f%% | %s\n", "attention",
                   sk_dtype_name(be->act_dtype), "graph (first seen) vs eager 3r", r.nmse,
                   r.max_rel, r.pct_of_bound, r.ok ? "PASS" : "FAIL");
            fails += !r.ok;
        }
    }
    free(a);
    free(b);
    pool_free(&p);
    return fails;
}

/* ---- part 3: timings ------------------------------------------------------ */

typedef enum { T_LINEAR, T_ATTN, T_MOD, T_GATED, T_RMS, T_LN, T_ROPE, T_CONV, T_NOISE } tkind;

typedef struct {
    const char *name;
    tkind kind;
    int64_t d[8];
    int act;
    const char *env; /* "NAME=VALUE" set while timing (A/B of kernel variants) */
} tcase;

static const tcase k_timed[] = {
    {"linear 4680x1536x1536 +bias", T_LINEAR, {4680, 1536, 1536}, SK_ACT_NONE},
    {"linear 4680x1536x8960 +bias gelu", T_LINEAR, {4680, 1536, 8960}, SK_ACT_GELU_TANH},
    {"linear 4680x8960x1536 +bias", T_LINEAR, {4680, 8960, 1536}, SK_ACT_NONE},
    {"attention q4680 kv18720 (2 ranges)", T_ATTN, {4680, 12, 128, 4680, 14040}, 0},
    {"attention q4680 kv18720 (1 range)", T_ATTN, {4680, 12, 128, 18720, 0}, 0},
    {"attention q4680 kv18720 (3 ranges)", T_ATTN, {4680, 12, 128, 4680, 4680, 9360}, 0},
    {"attention q4680 kv9360 (2 ranges)", T_ATTN, {4680, 12, 128, 4680, 4680}, 0},
    {"attention q4680 kv4680 (1 range)", T_ATTN, {4680, 12, 128, 4680, 0}, 0},
    {"attention q4680 kv18720 2r wgmma", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_CUDNN_ATTN=0"},
    {"attention q4680 kv18720 1r wgmma", T_ATTN, {4680, 12, 128, 18720, 0}, 0,
     "SK_CUDA_CUDNN_ATTN=0"},
    {"attention q4680 kv512 wgmma", T_ATTN, {4680, 12, 128, 512, 0}, 0, "SK_CUDA_CUDNN_ATTN=0"},
    {"attention q4680 kv18720 mma.sync", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_NO_WGMMA=1"},
    {"attention q4680 kv18720 wgmma 2 warpgroups", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_WG_NWG=2"},
    {"attention q4680 kv512 mma.sync", T_ATTN, {4680, 12, 128, 512, 0}, 0, "SK_CUDA_NO_WGMMA=1"},
    {"attention q4680 kv18720 variant 1", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=1"},
    {"attention q4680 kv18720 variant 2", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=2"},
    {"attention q4680 kv18720 variant 3", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=3"},
    {"attention q4680 kv18720 variant 4", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=4"},
    {"attention q4680 kv18720 variant 5", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=5"},
    {"attention q4680 kv18720 variant 6", T_ATTN, {4680, 12, 128, 4680, 14040}, 0,
     "SK_CUDA_FA_VARIANT=6"},
    {"attention q4680 kv512 (cross)", T_ATTN, {4680, 12, 128, 512, 0}, 0},
    {"modulate+ln 4680x1536 rpg1560", T_MOD, {4680, 1536, 1560}, 0},
    {"gated_add 4680x1536 rpg1560", T_GATED, {4680, 1536, 1560}, 0},
    {"rmsnorm 4680x1536", T_RMS, {4680, 1536}, 0},
    {"layernorm 4680x1536", T_LN, {4680, 1536}, 0},
    {"rope3d 3x30x52 12x128", T_ROPE, {3, 30, 52, 12, 128}, 0},
    {"conv2d 64->64 3x3 120x208", T_CONV, {1, 64, 120, 208, 64, 3}, 0},
    {"conv2d 64->64 3x3 480x832", T_CONV, {1, 64, 480, 832, 64, 3}, 0},
    {"conv2d 64->64 3x3 120x208 direct", T_CONV, {1, 64, 120, 208, 64, 3}, 0,
     "SK_CUDA_CONV=direct"},
    {"conv2d 64->64 3x3 480x832 wmma", T_CONV, {1, 64, 480, 832, 64, 3}, 0,
     "SK_CUDA_CONV=wmma"},
    {"conv2d 128->64 3x3 240x416 x2", T_CONV, {2, 128, 240, 416, 64, 3}, 0},
    {"conv2d 128->64 3x3 240x416 x2 wmma", T_CONV, {2, 128, 240, 416, 64, 3}, 0,
     "SK_CUDA_CONV=wmma"},
    {"conv2d 64->64 3x3 480x832 x4", T_CONV, {4, 64, 480, 832, 64, 3}, 0},
    {"conv2d 256->256 3x3 60x104", T_CONV, {1, 256, 60, 104, 256, 3}, 0},
    {"conv2d 3->64 3x3 480x832", T_CONV, {1, 3, 480, 832, 64, 3}, 0},
    {"conv2d 64->3 3x3 480x832 x4", T_CONV, {4, 64, 480, 832, 3, 3}, 0},
    {"conv2d 64->3 3x3 480x832 x4 wmma", T_CONV, {4, 64, 480, 832, 3, 3}, 0,
     "SK_CUDA_CONV=wmma"},
    {"conv2d 64->12 3x3 240x416 x4", T_CONV, {4, 64, 240, 416, 12, 3}, 0},
    {"conv2d 64->12 3x3 240x416 x4 wmma", T_CONV, {4, 64, 240, 416, 12, 3}, 0,
     "SK_CUDA_CONV=wmma"},
    {"conv2d 256->256 1x1 120x208", T_CONV, {1, 256, 120, 208, 256, 1}, 0},
    {"conv2d 256->256 1x1 120x208 wmma", T_CONV, {1, 256, 120, 208, 256, 1}, 0,
     "SK_CUDA_CONV=wmma"},
    {"noise 3x16x60x104", T_NOISE, {3, 16, 60, 104}, 0},
};

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static sk_status run_timed(const tcase *t, pool *p, sk_tensor **a, int setup)
{
    sk_backend *be = p->be;
    const sk_dtype A = be->act_dtype;
    const int64_t *d = t->d;
    if (setup) {
        switch (t->kind) {
        case T_LINEAR:
            a[0] = rnd(p, A, 2, SH(d[0], d[1]), 1.0f);
            a[1] = rnd(p, A, 2, SH(d[2], d[1]), 0.03f);
            a[2] = rnd(p, A, 1, SH(d[2]), 0.1f);
            a[3] = rnd(p, A, 2, SH(d[0], d[2]), 1.0f);
            break;
        case T_ATTN:
            a[0] = rnd(p, A, 3, SH(d[0], d[1], d[2]), 1.0f);
            a[1] = rnd(p, A, 3, SH(d[3] + d[4] + d[5] + 200, d[1], d[2]), 1.0f);
            a[2] = rnd(p, A, 3, SH(d[3] + d[4] + d[5] + 200, d[1], d[2]), 1.0f);
            a[3] = rnd(p, A, 2, SH(d[0], d[1] * d[2]), 1.0f);
            break;
        case T_MOD: case T_GATED:
            a[0] = rnd(p, A, 2, SH(d[0], d[1]), 1.0f);
            a[1] = rnd(p, A, 3, SH(d[0] / d[2], 6, d[1]), 0.1f);
            a[2] = rnd(p, A, 2, SH(d[0], d[1]), 1.0f);
            a[3] = a[2];
            break;
        case T_RMS: case T_LN:
            a[0] = rnd(p, A, 2, SH(d[0], d[1]), 1.0f);
            a[1] = rnd(p, A, 1, SH(d[1]), 1.0f);
            a[2] = rnd(p, A, 1, SH(d[1]), 1.0f);
            a[3] = rnd(p, A, 2, SH(d[0], d[1]), 1.0f);
            break;
        case T_ROPE:
            a[0] = rnd(p, A, 3, SH(d[0] * d[1] * d[2], d[3], d[4]), 1.0f);
            a[1] = a[2] = a[3] = a[0];
            break;
        case T_CONV:
            a[0] = rnd(p, A, 4, SH(d[0], d[1], d[2], d[3]), 1.0f);
            a[1] = rnd(p, A, 4, SH(d[4], d[1], d[5], d[5]), 0.05f);
            a[2] = rnd(p, A, 1, SH(d[4]), 0.1f);
            a[3] = rnd(p, A, 4, SH(d[0], d[4], d[2], d[3]), 1.0f);
            break;
        case T_NOISE:
            a[0] = rnd(p, A, 4, SH(d[0], d[1], d[2], d[3]), 1.0f);
            a[1] = a[2] = a[3] = a[0];
            break;
        }
        for (int i = 0; i < 4; i++)
            if (!a[i]) return SK_ERR(SK_E_OOM, "timing setup for '%s' failed", t->name);
        return SK_OK;
    }
    switch (t->kind) {
    case T_LINEAR: return sk_op_linear(be, a[3], a[0], a[1], a[2], (sk_act)t->act);
    case T_ATTN: {
        /* up to 3 ranges, 64 rows apart (never adjacent) */
        sk_kv_range rg[3] = {{a[1], a[2], 0, d[3]},
                             {a[1], a[2], d[3] + 64, d[4]},
                             {a[1], a[2], d[3] + d[4] + 128, d[5]}};
        return sk_op_attention(be, a[3], a[0], rg, d[5] ? 3 : d[4] ? 2 : 1,
                               1.0f / sqrtf((float)d[2]), NULL);
    }
    case T_MOD: return sk_op_modulate(be, a[2], a[0], a[1], 0, 1, d[2], 1, 1e-6f);
    case T_GATED: return sk_op_gated_add(be, a[0], a[2], a[1], 2, d[2]);
    case T_RMS: return sk_op_rmsnorm(be, a[3], a[0], a[1], 1e-6f);
    case T_LN: return sk_op_layernorm(be, a[3], a[0], a[1], a[2], 1e-6f);
    case T_ROPE: return sk_op_rope3d(be, a[0], d[0], d[1], d[2], 3, 10000.0);
    case T_CONV: return sk_op_conv2d(be, a[3], a[0], a[1], a[2], 1, (int)(d[5] / 2));
    case T_NOISE: return sk_op_noise(be, a[0], 42, 0, 1);
    }
    return SK_E_INTERNAL;
}

static double flops_of(const tcase *t)
{
    const int64_t *d = t->d;
    switch (t->kind) {
    case T_LINEAR: return 2.0 * d[0] * d[1] * d[2];
    case T_ATTN: return 4.0 * d[0] * (d[3] + d[4] + d[5]) * d[1] * d[2];
    case T_CONV: return 2.0 * d[0] * d[4] * d[2] * d[3] * d[1] * d[5] * d[5];
    default: return 0;
    }
}

static int time_ops(sk_backend *be, const char *filt, int reps, int f32_subset)
{
    cudaStream_t s = (cudaStream_t)sk_cuda_backend_stream(be);
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        printf("timing: cudaEventCreate failed\n");
        return 1;
    }
    float *ms = malloc(sizeof(float) * (size_t)reps);
    int fails = 0;
    for (size_t i = 0; i < sizeof k_timed / sizeof k_timed[0]; i++) {
        const tcase *t = &k_timed[i];
        if (!matches_name(NULL, t->name, filt)) continue;
        if (f32_subset && t->kind != T_LINEAR && t->kind != T_ATTN &&
            !(t->kind == T_CONV && !t->env && t->d[0] == 1 && t->d[1] == 64)) continue;
        /* f32 attention (one generic kernel): the two DiT shapes only */
        if (f32_subset && t->kind == T_ATTN &&
            (t->env || (!strstr(t->name, "(2 ranges)") && !strstr(t->name, "(cross)")) ||
             (t->d[3] + t->d[4] != 18720 && t->d[3] != 512))) continue;
        pool p = {be, {{0}}, 0, 99 + i};
        sk_tensor *a[4] = {0};
        char envname[64] = "";
        if (t->env) {
            const char *eq = strchr(t->env, '=');
            snprintf(envname, sizeof envname, "%.*s", (int)(eq - t->env), t->env);
            setenv(envname, eq + 1, 1);
        }
        sk_status st = run_timed(t, &p, a, 1);
        for (int w = 0; st == SK_OK && w < 2; w++) st = run_timed(t, &p, a, 0); /* warm-up */
        if (st == SK_OK) st = sk_backend_sync(be);
        for (int r = 0; st == SK_OK && r < reps; r++) {
            cudaEventRecord(e0, s);
            st = run_timed(t, &p, a, 0);
            cudaEventRecord(e1, s);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms[r], e0, e1);
        }
        if (st == SK_OK) st = sk_backend_sync(be);
        if (st != SK_OK) {
            printf("time | %-5s | %-36s | FAILED: %s\n", sk_dtype_name(be->act_dtype), t->name,
                   sk_error_message());
            fails++;
        } else {
            qsort(ms, (size_t)reps, sizeof(float), cmp_f);
            float med = ms[reps / 2];
            double fl = flops_of(t);
            if (fl > 0)
                printf("time | %-5s | %-36s | %9.3f ms | %7.1f TFLOP/s | min %.3f max %.3f\n",
                       sk_dtype_name(be->act_dtype), t->name, med, fl / (med * 1e-3) / 1e12,
                       ms[0], ms[reps - 1]);
            else
                printf("time | %-5s | %-36s | %9.3f ms |                 | min %.3f max %.3f\n",
                       sk_dtype_name(be->act_dtype), t->name, med, ms[0], ms[reps - 1]);
        }
        if (envname[0]) unsetenv(envname);
        pool_free(&p);
    }
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return fails;
}

/* flag_nonfinite (issue 15 #7) against the CPU reference: random data of
 * several sizes in the backend's activation dtype, clean, with one NaN or one
 * +-Inf at a random place; the device flag must match the CPU's. */
static int check_flag_nonfinite(sk_backend *cpu, sk_backend *be, uint32_t seed)
{
    int fails = 0;
    static const int64_t sizes[] = {1, 255, 256, 257, 3 * 16 * 60 * 104};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int kind = 0; kind < 4; kind++) {
            const int64_t n = sizes[si];
            float *h = malloc((size_t)n * sizeof *h);
            uint32_t r = seed + (uint32_t)(si * 4 + (size_t)kind);
            for (int64_t i = 0; i < n; i++) {
                r = r * 1664525u + 1013904223u;
                h[i] = (float)(r >> 8) / 16777216.0f * 200.0f - 100.0f;
            }
            const int64_t at = (int64_t)(r % (uint32_t)n);
            if (kind == 1) h[at] = NAN;
            if (kind == 2) h[at] = INFINITY;
            if (kind == 3) h[at] = -INFINITY;
            int32_t want = 0, got = 0, zero = 0;
            sk_tensor xc = {0}, xg = {0};
            void *fg = NULL;
            int ok = sk_tensor_alloc(cpu, SK_DTYPE_F32, 1, &n, &xc) == SK_OK &&
                     sk_tensor_upload_f32(&xc, h, (size_t)n) == SK_OK &&
                     sk_op_flag_nonfinite(cpu, &xc, &want) == SK_OK &&
                     sk_tensor_alloc(be, be->act_dtype, 1, &n, &xg) == SK_OK &&
                     sk_tensor_upload_f32(&xg, h, (size_t)n) == SK_OK &&
                     be->ops->alloc(be, sizeof(int32_t), &fg) == SK_OK &&
                     be->ops->upload(be, fg, &zero, sizeof zero) == SK_OK &&
                     sk_op_flag_nonfinite(be, &xg, fg) == SK_OK &&
                     be->ops->download(be, &got, fg, sizeof got) == SK_OK;
            if (!ok || got != want || want != (kind != 0)) {
                printf("FAIL flag_nonfinite n=%lld kind %d (%s): cpu %d gpu %d %s\n",
                       (long long)n, kind, sk_dtype_name(be->act_dtype), want, got,
                       ok ? "" : sk_error_message());
                fails++;
            }
            if (fg) be->ops->free(be, fg);
            sk_tensor_free(&xg);
            sk_tensor_free(&xc);
            free(h);
        }
    printf("%s flag_nonfinite (%s): 20 cases\n", fails ? "FAIL" : "ok  ",
           sk_dtype_name(be->act_dtype));
    return fails;
}

int main(int argc, char **argv)
{
    const char *filt = NULL;
    uint32_t seed = 20261124u;
    int reps = 20, do_time = 1, list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--op") && i + 1 < argc) filt = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-time")) do_time = 0;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1; /* shared table only: for sanitizers */
        else {
            fprintf(stderr,
                    "usage: %s [--op NAME|CASE[,..]] [--seed N] [--reps N] [--no-time] [--quick] [--list]\n"
                    "unknown argument '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (list) {
        char buf[256];
        for (int i = 0; i < n_total(); i++)
            printf("%-42s %s\n", case_at(i)->name, sk_op_case_describe(case_at(i), buf, sizeof buf));
        for (size_t i = 0; i < sizeof k_timed / sizeof k_timed[0]; i++)
            printf("timed: %s\n", k_timed[i].name);
        return 0;
    }
    sk_backend *cpu = NULL, *gpu[2] = {NULL, NULL};
    if (sk_backend_cpu_create(&cpu) != SK_OK) {
        fprintf(stderr, "check_ops: CPU backend: %s\n", sk_error_message());
        return 2;
    }
    if (sk_backend_cuda_create(0, SK_DTYPE_BF16, &gpu[0]) != SK_OK ||
        sk_backend_cuda_create(0, SK_DTYPE_F32, &gpu[1]) != SK_OK) {
        fprintf(stderr, "check_ops: CUDA backend: %s\n", sk_error_message());
        sk_backend_free_(&gpu[0]);
        sk_backend_free_(&cpu);
        return 2;
    }
    printf("check_ops: seed %u\n", seed);
    int n_run = 0;
    int fails = check_cases(cpu, gpu, filt, seed, &n_run);
    if (!filt || strstr(filt, "flag_nonfinite")) {
        fails += check_flag_nonfinite(cpu, gpu[0], seed) + check_flag_nonfinite(cpu, gpu[1], seed);
        n_run += 2;
    }
    if (!quick && (!filt || strstr(filt, "attention"))) {
        fails += check_attention_full(gpu[0], 2, NULL);
        fails += check_attention_full(gpu[0], 3, NULL);
        fails += check_attention_full(gpu[0], 1, NULL);
        fails += check_attention_full(gpu[0], 2, "SK_CUDA_CUDNN_ATTN=0");
        fails += check_attention_graph(gpu[0]);
        n_run++;
    }
    int tfails = 0;
    if (do_time) {
        printf("\n-- timings (median of %d, CUDA events) --\n", reps);
        /* --op filters timings by substring of their names too */
        tfails += time_ops(gpu[0], filt, reps, 0);
        tfails += time_ops(gpu[1], filt, reps < 5 ? reps : 5, 1);
    }
    printf("\ncheck_ops: %d comparisons, %d failed%s\n", n_run, fails,
           tfails ? " (and timing errors)" : "");
    /* a filter that matches no case (a typo, a renamed op) must not pass */
    if (n_run == 0) {
        fprintf(stderr, "check_ops: no comparison ran%s%s%s: nothing was checked (see --list)\n",
                filt ? " (--op '" : "", filt ? filt : "", filt ? "' matched no case)" : "");
        fails++;
    }
    sk_backend_free_(&gpu[0]);
    sk_backend_free_(&gpu[1]);
    sk_backend_free_(&cpu);
    return fails || tfails ? 1 : 0;
}
