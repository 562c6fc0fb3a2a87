/* check_umt5.c - the umT5 encoder on CUDA against the CPU reference.
 *
 * For each weights file (default: the tiny fixture) and token counts
 * 1, 7, 77, 300 and 512: seeded
 * random ids, sk_umt5_encode on the CPU backend (f32) and on CUDA with f32
 * activations (rel err <= 1e-4) and with bf16 activations (rel err <= 3e-2:
 * bf16 rounding after every op, as Wan's own bf16 run). Then the CUDA time of
 * one encode at the largest count (warm, second call).
 *
 * --time-only FILE: no comparison (the CPU would take minutes at umT5-XXL size):
 * load time and warm CUDA encode times at 16, 77 and 512 tokens, f32 and bf16.
 *
 * Measured on the H100 (2026-11-24): CUDA f32 vs CPU rel err 2e-6 (tiny) and
 * 4.4e-6 (dim 512, 8 x 64 heads, bf16 weights), bf16 activations 0.8% / 1.6%;
 * umT5-XXL size (random bf16 weights, 24 layers): load 1.4 s; bf16 activations
 * 9.7 / 10.7 / 22.6 ms at 16 / 77 / 512 tokens; f32 activations 37 / 52 / 161 ms.
 *
 * usage: gpu_check_umt5 [weights.safetensors ...] | --time-only FILE
 * Exit status: 0 all pass, 1 a comparison failed, 2 setup error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core/backend.h"
#include "runtime/engine/device.h"
#include "text/umt5.h"

#define FIX SK_SOURCE_DIR "/tests/fixtures/text/"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rel_err(const float *a, const float *b, size_t n, int *nan)
{
    double num = 0, den = 0;
    *nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) (*nan)++;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int check_file(const char *path, sk_backend *cpu, sk_backend *gf, sk_backend *gb)
{
    sk_umt5 *mc = NULL, *mf = NULL, *mb = NULL;
    int fail = 0;
    if (sk_umt5_load(cpu, path, NULL, &mc) || sk_umt5_load(gf, path, NULL, &mf) ||
        sk_umt5_load(gb, path, NULL, &mb)) {
        fprintf(stderr, "check_umt5: loading '%s': %s\n", path, sk_error_message());
        sk_umt5_free(&mc);
        sk_umt5_free(&mf);
        return 2;
    }
    const sk_umt5_config *c = sk_umt5_config_of(mc);
    printf("%s\n", sk_umt5_describe(mc));
    printf("  %6s  %12s  %12s  %s\n", "tokens", "f32 rel err", "bf16 rel err", "result");
    const int counts[] = {1, 7, 77, 300, 512};
    int maxn = 0;
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        maxn = n;
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        float *oc = malloc((size_t)n * c->dim * sizeof *oc), *of = malloc((size_t)n * c->dim * 4),
              *ob = malloc((size_t)n * c->dim * 4);
        uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(n + 1);
        for (int i = 0; i < n; i++) {
            s ^= s >> 31;
            s *= 0xBF58476D1CE4E5B9ull;
            s ^= s >> 29;
            ids[i] = (int32_t)(s % (uint64_t)c->vocab);
        }
        int nan1 = 0, nan2 = 0;
        double e1 = -1, e2 = -1;
        if (sk_umt5_encode(mc, ids, n, n, oc) || sk_umt5_encode(mf, ids, n, n, of) ||
            sk_umt5_encode(mb, ids, n, n, ob)) {
            printf("  %6d  encode failed: %s  FAIL\n", n, sk_error_message());
            fail = 1;
        } else {
            e1 = rel_err(of, oc, (size_t)n * c->dim, &nan1);
            e2 = rel_err(ob, oc, (size_t)n * c->dim, &nan2);
            int ok = e1 <= 1e-4 && e2 <= 3e-2 && !nan1 && !nan2;
            printf("  %6d  %12.3g  %12.3g  %s\n", n, e1, e2, ok ? "ok" : "FAIL");
            fail |= !ok;
        }
        free(ids);
        free(oc);
        free(of);
        free(ob);
    }
    /* warm timing at the largest count */
    int32_t *ids = calloc((size_t)maxn, sizeof *ids);
    float *o = malloc((size_t)maxn * c->dim * 4);
    for (int i = 0; i < maxn; i++) ids[i] = (int32_t)((i * 7919) % c->vocab);
    for (int pass = 0; pass < 2; pass++) {
        sk_backend *bes[2] = {gf, gb};
        sk_umt5 *ms[2] = {mf, mb};
        double t0 = now_s();
        int bad = sk_umt5_encode(ms[pass], ids, maxn, maxn, o) != SK_OK;
        bad |= sk_umt5_encode(ms[pass], ids, maxn, maxn, o) != SK_OK;
        double t = (now_s() - t0) / 2;
        if (bad) fail = 1;
        printf("  cuda %s: %d tokens in %.2f ms per encode (incl. the download)\n",
               sk_dtype_name(bes[pass]->act_dtype), maxn, 1e3 * t);
    }
    free(ids);
    free(o);
    sk_umt5_free(&mc);
    sk_umt5_free(&mf);
    sk_umt5_free(&mb);
    return fail;
}

static int time_only(const char *path, sk_backend *gf, sk_backend *gb)
{
    sk_backend *bes[2] = {gb, gf};
    for (int p = 0; p < 2; p++) {
        sk_umt5 *m = NULL;
        double t0 = now_s();
        if (sk_umt5_load(bes[p], path, NULL, &m)) {
            fprintf(stderr, "check_umt5: %s\n", sk_error_message());
            return 2;
        }
        const sk_umt5_config *c = sk_umt5_config_of(m);
        printf("%s\n  load onto cuda (%s activations): %.2f s\n", sk_umt5_describe(m),
               sk_dtype_name(bes[p]->act_dtype), now_s() - t0);
        const int counts[] = {16, 77, 512};
        float *o = malloc((size_t)512 * c->dim * sizeof *o);
        int32_t ids[512];
        for (int i = 0; i < 512; i++) ids[i] = (int32_t)((i * 7919 + 13) % c->vocab);
        for (int k = 0; k < 3; k++) {
            int n = counts[k];
            if (sk_umt5_encode(m, ids, n, 512, o)) { /* warm-up (sizes the scratch) */
                fprintf(stderr, "check_umt5: %s\n", sk_error_message());
                free(o);
                sk_umt5_free(&m);
                return 1;
            }
            double t1 = now_s();
            for (int r = 0; r < 3; r++) sk_umt5_encode(m, ids, n, 512, o);
            double dt = (now_s() - t1) / 3;
            int nan = 0;
            for (size_t i = 0; i < (size_t)n * c->dim; i++) nan += !isfinite(o[i]);
            printf("  %s: %3d tokens %8.2f ms per encode%s\n", sk_dtype_name(bes[p]->act_dtype),
                   n, 1e3 * dt, nan ? "  NON-FINITE OUTPUT" : "");
            if (nan) { free(o); sk_umt5_free(&m); return 1; }
        }
        free(o);
        sk_umt5_free(&m);
    }
    return 0;
}

int main(int argc, char **argv)
{
    sk_backend *cpu = NULL, *gf = NULL, *gb = NULL;
    if (sk_backend_cpu_create(&cpu) || sk_backend_create("cuda", SK_DTYPE_F32, &gf) ||
        sk_backend_create("cuda", SK_DTYPE_BF16, &gb)) {
        fprintf(stderr, "check_umt5: %s\n", sk_error_message());
        return 2;
    }
    int rc = 0;
    if (argc == 3 && !strcmp(argv[1], "--time-only")) {
        rc = time_only(argv[2], gf, gb);
        argc = 1;
        argv[0] = NULL;
    } else if (argc < 2) rc = check_file(FIX "umt5_tiny.safetensors", cpu, gf, gb);
    for (int i = 1; i < argc; i++) {
        int r = check_file(argv[i], cpu, gf, gb);
        if (r > rc) rc = r;
    }
    sk_backend_free_(&gb);
    sk_backend_free_(&gf);
    sk_backend_free_(&cpu);
    printf("check_umt5: %s\n", rc == 0 ? "all pass" : rc == 1 ? "FAILED" : "setup error");
    return rc;
}
