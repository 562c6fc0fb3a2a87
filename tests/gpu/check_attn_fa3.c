/* check_attn_fa3.c - the one-pass FA3 attention kernel (cuda/cuda_flash_fa3.cu):
 * correctness against the CPU reference, then TFLOP/s beside cuDNN.
 *
 * Part 1: bf16 attention (head dim 128) on the CPU backend (the oracle) and on
 * the CUDA backend with SK_CUDA_ATTN=fa3, for every tile configuration
 * (SK_CUDA_FA3_CFG: key tile, stages, pingpong, last-wave split; the small
 * cases have fewer units than SMs, so the split ones split every unit): several non-adjacent ranges of one pool, ragged lengths
 * (keys not a multiple of the tile, queries not a multiple of 128), 12 and 24
 * heads; compared under the bf16 attention bound of the op tests.
 * Part 2: at the real shapes (too big for the CPU), each fast kernel against
 * the generic f32-accumulating kernel under the same bound.
 * Part 3 (timing, unless --no-time): median of --reps runs of each kernel at
 * (q 4680, kv 18720, 12 heads), (q 7040, kv 28160, 24 heads) and the sink +
 * window cases in 3 ranges, as TFLOP/s (4 Nq Nk NH HD flops); a short table last.
 *
 * The FA3 kernel has mbarrier rings and named barriers: a bug there hangs
 * rather than fails, so every GPU call is watched (HANG line, exit 3, the
 * lines before it kept) instead of eating the whole device call; a failed
 * comparison prints where the error sits (head-dim half, row g / g+8 of the
 * accumulator, consumer warpgroup) to tell a descriptor or fragment bug
 * from a softmax one, and the Q = 0 cases (uniform attention: O = mean of
 * the valid V rows) test the P V GEMM and the key masking without the S one.
 *
 * usage: gpu_check_attn_fa3 [--reps N] [--only LABEL,..] [--no-time] [--no-check]
 *   --only: the kernels whose label holds one of the words ("cudnn,plain")
 * Exit status: 0 all pass, 1 a check failed, 2 setup error (no GPU, ...).
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/backend.h"
#include "tests/common/compare.h"
#include "tests/common/op_cases.h"

#define HD 128
#define MAXR 5

typedef struct {
    const char *label, *attn, *cfg;
} kernel_sel;
static const kernel_sel k_kernels[] = {
    {"cudnn", "cudnn", NULL},
    {"wgmma(old)", "wgmma", NULL},
    {"fa3 128/2st plain", "fa3", "128,2,0,0"},
    {"fa3 128/3st plain", "fa3", "128,3,0,0"},
    {"fa3 176/2st plain", "fa3", "176,2,0,0"},
    {"fa3 128/2st split", "fa3", "128,2,0,1"},
    {"fa3 128/3st split", "fa3", "128,3,0,1"},
    {"fa3 176/2st split", "fa3", "176,2,0,1"},
    {"fa3 128/2st pp", "fa3", "128,2,1,1"},
    {"fa3 128/3st pp", "fa3", "128,3,1,1"},
    {"fa3 176/2st pp", "fa3", "176,2,1,1"},
    /* pingpong without the split: the small cases split every unit into
     * parts of 2-3 tiles, so only these wrap the rings under the pingpong */
    {"fa3 128/3st pp nosplit", "fa3", "128,3,1,0"},
    {"fa3 176/2st pp nosplit", "fa3", "176,2,1,0"},
};
#define NKER ((int)(sizeof k_kernels / sizeof k_kernels[0]))

static void select_kernel(const kernel_sel *k)
{
    setenv("SK_CUDA_ATTN", k->attn, 1);
    if (k->cfg) setenv("SK_CUDA_FA3_CFG", k->cfg, 1);
    else unsetenv("SK_CUDA_FA3_CFG");
}
static void unselect(void)
{
    unsetenv("SK_CUDA_ATTN");
    unsetenv("SK_CUDA_FA3_CFG");
}

/* --only a,b: kernels whose label contains one of the comma-separated words */
static const char *only;
static int selected(const kernel_sel *k)
{
    if (!only) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (strstr(k->label, tok)) return 1;
    return 0;
}


/* wait for the stream's work at most secs seconds; a hung kernel prints a
 * HANG line and ends the process (exit 3): nothing else can stop it */
static void watch(cudaStream_t s, double secs, const char *what, const char *label)
{
    if (!s) return;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e != cudaErrorNotReady) return; /* done, or an error the caller reports */
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > secs) {
            printf("HANG %s %s: not done after %.0f s (mbarrier / named-barrier deadlock?) | FAIL\n",
                   what, label, secs);
            fflush(stdout);
            _exit(3);
        }
        usleep(1000);
    }
}

/* where a failed comparison's error sits: max |got - ref| by head-dim half
 * (the two 64-column TMA boxes / descriptor halves), accumulator row g or
 * g + 8 (row % 16), consumer warpgroup (row % 128 < 64 or not), and NaNs */
static void error_map(const float *got, const float *ref, int64_t Nq, int64_t NH)
{
    double mx[2][2][2] = {{{0}}};
    long nan = 0;
    for (int64_t i = 0; i < Nq * NH * HD; i++) {
        const int64_t row = i / (NH * HD);
        const int col = (int)(i % HD);
        const double d = fabs((double)got[i] - (double)ref[i]);
        if (got[i] != got[i]) {
            nan++;
            continue;
        }
        double *m = &mx[row % 128 >= 64][row % 16 >= 8][col >= 64];
        if (d > *m) *m = d;
    }
    printf("    error map (max abs; wg = consumer, g/g+8 = accumulator row, d = head dims): NaN %ld\n", nan);
    for (int w = 0; w < 2; w++)
        printf("      wg%d: g d0-63 %.3g  g d64-127 %.3g  g+8 d0-63 %.3g  g+8 d64-127 %.3g\n", w,
               mx[w][0][0], mx[w][0][1], mx[w][1][0], mx[w][1][1]);
}

static sk_op_bounds bf16_bounds(void)
{
    sk_op_case fake;
    memset(&fake, 0, sizeof fake);
    fake.op = "attention";
    fake.cls = SK_OPC_ATTENTION;
    fake.dtype = SK_DTYPE_BF16;
    return sk_op_case_bounds(&fake);
}

static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}
static void fill(float *a, size_t n, uint32_t *st)
{
    for (size_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        a[i] = bf16_round((float)(*st >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
}

/* one attention on backend be: q [Nq, NH, HD], a pool of cap rows for k and v,
 * the ranges (start, len); out downloaded as f32 into res */
static sk_status run_attn(sk_backend *be, sk_dtype dt, const float *hq, const float *hk,
                          const float *hv, int64_t Nq, int64_t NH, int64_t cap, int nr,
                          const int64_t (*rg)[2], float scale, float *res, const char *what,
                          const char *label)
{
    cudaStream_t cs = dt == SK_DTYPE_BF16 ? (cudaStream_t)sk_cuda_backend_stream(be) : NULL;
    sk_tensor q = {0}, k = {0}, v = {0}, o = {0};
    const int64_t sq[3] = {Nq, NH, HD}, sp[3] = {cap, NH, HD}, so[2] = {Nq, NH * HD};
    sk_status st = sk_tensor_alloc(be, dt, 3, sq, &q);
    if (st == SK_OK) st = sk_tensor_alloc(be, dt, 3, sp, &k);
    if (st == SK_OK) st = sk_tensor_alloc(be, dt, 3, sp, &v);
    if (st == SK_OK) st = sk_tensor_alloc(be, dt, 2, so, &o);
    if (st == SK_OK) st = sk_tensor_upload_f32(&q, hq, (size_t)(Nq * NH * HD));
    if (st == SK_OK) st = sk_tensor_upload_f32(&k, hk, (size_t)(cap * NH * HD));
    if (st == SK_OK) st = sk_tensor_upload_f32(&v, hv, (size_t)(cap * NH * HD));
    sk_kv_range r[MAXR];
    for (int i = 0; i < nr; i++) r[i] = (sk_kv_range){&k, &v, rg[i][0], rg[i][1]};
    if (st == SK_OK) st = sk_op_attention(be, &o, &q, r, nr, scale, NULL);
    if (st == SK_OK) watch(cs, 20.0, what, label);
    if (st == SK_OK) st = sk_tensor_download_f32(&o, res, (size_t)(Nq * NH * HD));
    sk_tensor_free(&q);
    sk_tensor_free(&k);
    sk_tensor_free(&v);
    sk_tensor_free(&o);
    return st;
}

/* one attention case: nr key ranges [start, start+len) of a pool of cap rows */
typedef struct {
    const char *name;
    int64_t Nq, NH, cap;
    int nr;
    int64_t rg[MAXR][2];
    int qzero; /* Q = 0: uniform weights, O = mean of the valid V rows (P V and masking alone) */
} att_case;

static const att_case k_small[] = {
    /* first the simplest: one q tile, one head, one partial key tile */
    {"q128 1h 1 range 64", 128, 1, 64, 1, {{0, 64}}, 0},
    {"q128 1h 1 range 64 Q=0", 128, 1, 64, 1, {{0, 64}}, 1},
    {"q129 24h 5 ranges Q=0", 129, 24, 1000, 5, {{990, 5}, {0, 176}, {200, 177}, {500, 1}, {600, 128}}, 1},
    {"q300 12h 3 ranges 200+333+77", 300, 12, 1200, 3, {{0, 200}, {700, 333}, {400, 77}}, 0},
    {"q200 24h 2 ranges 130+511", 200, 24, 900, 2, {{3, 130}, {300, 511}}, 0},
    {"q64 12h 1 range 1000", 64, 12, 1001, 1, {{1, 1000}}, 0},
    {"q129 24h 5 ranges 5+176+177+1+128", 129, 24, 1000, 5,
     {{990, 5}, {0, 176}, {200, 177}, {500, 1}, {600, 128}}, 0},
    {"q256 12h 1 range 352", 256, 12, 400, 1, {{40, 352}}, 0},
};

static int check_small(sk_backend *cpu, sk_backend *gpu)
{
    int fails = 0;
    const sk_op_bounds b = bf16_bounds();
    const float scale = 2.0f / sqrtf((float)HD); /* sharper than 1/sqrt: not near uniform */
    for (size_t ci = 0; ci < sizeof k_small / sizeof k_small[0]; ci++) {
        const att_case *c = &k_small[ci];
        const size_t nq = (size_t)(c->Nq * c->NH * HD), np = (size_t)(c->cap * c->NH * HD);
        float *hq = malloc(nq * 4), *hk = malloc(np * 4), *hv = malloc(np * 4);
        float *ref = malloc(nq * 4), *got = malloc(nq * 4);
        uint32_t seed = 77u + (uint32_t)ci;
        fill(hq, nq, &seed);
        fill(hk, np, &seed);
        fill(hv, np, &seed);
        if (c->qzero) memset(hq, 0, nq * 4);
        sk_status st = run_attn(cpu, SK_DTYPE_F32, hq, hk, hv, c->Nq, c->NH, c->cap, c->nr,
                                c->rg, scale, ref, c->name, "cpu");
        if (st != SK_OK) {
            printf("small %-34s | CPU reference failed: %s | FAIL\n", c->name, sk_error_message());
            fails++;
        }
        for (int k = 0; k < NKER && st == SK_OK; k++) {
            if (!selected(&k_kernels[k])) continue;
            select_kernel(&k_kernels[k]);
            sk_status s2 = run_attn(gpu, SK_DTYPE_BF16, hq, hk, hv, c->Nq, c->NH, c->cap, c->nr,
                                    c->rg, scale, got, c->name, k_kernels[k].label);
            unselect();
            if (s2 != SK_OK) {
                printf("small %-34s %-18s | CUDA failed: %s | FAIL\n", c->name, k_kernels[k].label,
                       sk_error_message());
                fails++;
                continue;
            }
            sk_compare_result r = sk_compare(got, ref, nq, b.nmse, b.atol, b.rtol);
            printf("small %-34s %-18s | nmse %9.2e max_rel %9.2e %6.1f%% | %s\n", c->name,
                   k_kernels[k].label, r.nmse, r.max_rel, r.pct_of_bound, r.ok ? "PASS" : "FAIL");
            if (!r.ok) {
                char buf[512];
                sk_compare_format(&r, got, ref, buf, sizeof buf);
                printf("    %s\n", buf);
                error_map(got, ref, c->Nq, c->NH);
                fails++;
            }
        }
        free(hq);
        free(hk);
        free(hv);
        free(ref);
        free(got);
    }
    return fails;
}

/* ---- parts 2 and 3: real shapes ---------------------------------------- */

static const att_case k_big[] = {
    {"1.3B q4680 kv18720 12h 1r", 4680, 12, 18820, 1, {{100, 18720}}},
    {"1.3B q4680 kv18720 12h 3r", 4680, 12, 21000, 3, {{0, 4680}, {11000, 9360}, {6000, 4680}}},
    {"5B q7040 kv28160 24h 1r", 7040, 24, 28200, 1, {{40, 28160}}},
    {"5B q7040 kv28160 24h 3r", 7040, 24, 32000, 3, {{0, 7040}, {17000, 14080}, {9000, 7040}}},
};
#define NBIG ((int)(sizeof k_big / sizeof k_big[0]))


static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int run_big(sk_backend *be, int do_check, int do_time, int reps)
{
    int fails = 0;
    const float scale = 1.0f / sqrtf((float)HD);
    const sk_op_bounds b = bf16_bounds();
    double tf[NBIG][NKER];
    for (int i = 0; i < NBIG; i++)
        for (int k = 0; k < NKER; k++) tf[i][k] = -1.0;
    cudaStream_t s = (cudaStream_t)sk_cuda_backend_stream(be);
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        printf("timing: cudaEventCreate failed | FAIL\n");
        return 1;
    }
    float *ms = malloc((size_t)reps * sizeof *ms);
    for (int ci = 0; ci < NBIG; ci++) {
        const att_case *c = &k_big[ci];
        sk_tensor q = {0}, k = {0}, v = {0}, o = {0};
        const int64_t sq[3] = {c->Nq, c->NH, HD}, sp[3] = {c->cap, c->NH, HD},
                      so[2] = {c->Nq, c->NH * HD};
        sk_status st = sk_tensor_alloc(be, SK_DTYPE_BF16, 3, sq, &q);
        if (st == SK_OK) st = sk_tensor_alloc(be, SK_DTYPE_BF16, 3, sp, &k);
        if (st == SK_OK) st = sk_tensor_alloc(be, SK_DTYPE_BF16, 3, sp, &v);
        if (st == SK_OK) st = sk_tensor_alloc(be, SK_DTYPE_BF16, 2, so, &o);
        if (st == SK_OK) st = sk_op_noise(be, &q, 11 + ci, 0, 77);
        if (st == SK_OK) st = sk_op_noise(be, &k, 12 + ci, 0, 77);
        if (st == SK_OK) st = sk_op_noise(be, &v, 13 + ci, 0, 77);
        sk_kv_range r[MAXR];
        int64_t Nk = 0;
        for (int i = 0; i < c->nr; i++) {
            r[i] = (sk_kv_range){&k, &v, c->rg[i][0], c->rg[i][1]};
            Nk += c->rg[i][1];
        }
        const size_t n = (size_t)(c->Nq * c->NH * HD);
        float *ref = do_check ? malloc(n * 4) : NULL, *got = do_check ? malloc(n * 4) : NULL;
        if (st == SK_OK && do_check) {
            setenv("SK_CUDA_ATTN", "generic", 1);
            st = sk_op_attention(be, &o, &q, r, c->nr, scale, NULL);
            unselect();
            if (st == SK_OK) st = sk_tensor_download_f32(&o, ref, n);
        }
        if (st != SK_OK) {
            printf("%s: setup failed: %s | FAIL\n", c->name, sk_error_message());
            fails++;
        }
        for (int kk = 0; kk < NKER && st == SK_OK; kk++) {
            if (!selected(&k_kernels[kk])) continue;
            select_kernel(&k_kernels[kk]);
            sk_status s2 = sk_op_attention(be, &o, &q, r, c->nr, scale, NULL);
            if (s2 == SK_OK) watch(s, 60.0, c->name, k_kernels[kk].label);
            if (s2 == SK_OK && do_check) {
                s2 = sk_tensor_download_f32(&o, got, n);
                if (s2 == SK_OK) {
                    sk_compare_result cr = sk_compare(got, ref, n, b.nmse, b.atol, b.rtol);
                    printf("%-26s %-20s vs generic | nmse %9.2e max_rel %9.2e %6.1f%% | %s\n",
                           c->name, k_kernels[kk].label, cr.nmse, cr.max_rel, cr.pct_of_bound,
                           cr.ok ? "PASS" : "FAIL");
                    if (!cr.ok) {
                        error_map(got, ref, c->Nq, c->NH);
                        fails++;
                    }
                }
            }
            if (s2 == SK_OK && do_time) {
                for (int w = 0; w < 2 && s2 == SK_OK; w++)
                    s2 = sk_op_attention(be, &o, &q, r, c->nr, scale, NULL);
                for (int rep = 0; rep < reps && s2 == SK_OK; rep++) {
                    cudaEventRecord(e0, s);
                    s2 = sk_op_attention(be, &o, &q, r, c->nr, scale, NULL);
                    cudaEventRecord(e1, s);
                    cudaEventSynchronize(e1);
                    cudaEventElapsedTime(&ms[rep], e0, e1);
                }
                if (s2 == SK_OK && cudaDeviceSynchronize() == cudaSuccess) {
                    qsort(ms, (size_t)reps, sizeof *ms, cmp_f);
                    const double t = ms[reps / 2] * 1e-3;
                    tf[ci][kk] = 4.0 * (double)c->Nq * (double)Nk * (double)c->NH * HD / t * 1e-12;
                    printf("%-26s %-20s | %8.3f ms | %6.1f TFLOP/s\n", c->name, k_kernels[kk].label,
                           t * 1e3, tf[ci][kk]);
                }
            }
            unselect();
            if (s2 != SK_OK) {
                printf("%-26s %-20s | failed: %s | FAIL\n", c->name, k_kernels[kk].label,
                       sk_error_message());
                fails++;
            }
        }
        free(ref);
        free(got);
        sk_tensor_free(&q);
        sk_tensor_free(&k);
        sk_tensor_free(&v);
        sk_tensor_free(&o);
    }
    if (do_time) {
        printf("\n-- attention TFLOP/s (median of %d, CUDA events; HD 128, bf16) --\n", reps);
        printf("%-26s", "shape");
        for (int k = 0; k < NKER; k++)
            if (selected(&k_kernels[k])) printf(" | %18s", k_kernels[k].label);
        printf("\n");
        for (int i = 0; i < NBIG; i++) {
            printf("%-26s", k_big[i].name);
            for (int k = 0; k < NKER; k++)
                if (selected(&k_kernels[k])) printf(" | %18.1f", tf[i][k]);
            printf("\n");
        }
    }
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return fails;
}

int main(int argc, char **argv)
{
    int reps = 20, do_time = 1, do_check = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--no-time")) do_time = 0;
        else if (!strcmp(argv[i], "--no-check")) do_check = 0;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--only LABEL,..] [--no-time] [--no-check]\nunknown argument '%s'\n",
                    argv[0], argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a hung kernel still leaves the lines before it */
    sk_backend *cpu = NULL, *gpu = NULL;
    if (sk_backend_cpu_create(&cpu) != SK_OK ||
        sk_backend_cuda_create(0, SK_DTYPE_BF16, &gpu) != SK_OK) {
        fprintf(stderr, "check_attn_fa3: backend: %s\n", sk_error_message());
        sk_backend_free_(&cpu);
        return 2;
    }
    int fails = 0;
    if (do_check) fails += check_small(cpu, gpu);
    fails += run_big(gpu, do_check, do_time, reps);
    printf("\ncheck_attn_fa3: %s (%d failed)\n", fails ? "FAIL" : "PASS", fails);
    sk_backend_free_(&gpu);
    sk_backend_free_(&cpu);
    return fails ? 1 : 0;
}
