/* check_taehv.c - the TAEHV decoder/encoder on CUDA against the CPU reference,
 * then timings at Wan's real sizes.
 *
 * Part 1: a full-width random taew2_1 and taew2_2 (real shapes, F16 weights)
 * decode and encode small clips on the CPU backend (oracle) and on CUDA in f32
 * and bf16 activation modes; CUDA streaming (chunk 3 and 1) must equal CUDA
 * whole-clip up to float reassociation, and every CUDA result must be close to
 * the CPU one (f32: nmse <= 1e-6; bf16: nmse <= 1e-3 and |err| <= 0.3: random
 * full-width weights through ~30 layers in bf16 give nmse ~2.6e-4 and a few
 * pixels off by ~0.16 on the H100, 2026-11-24).
 * Part 2: streaming decode timings, bf16 and f32, chunk 3 latents per push (what the
 * DiT hands over): taew2_1 at 480x832 (latents 60x104) and taew2_2 at
 * 704x1280 (latents 44x80); also whole-chunk encode of 12 frames at 480x832.
 *
 * usage: gpu_check_taehv [--no-time]
 * Exit status: 0 all pass, 1 a comparison failed, 2 setup error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/core/progress.h"
#include "tests/common/compare.h"
#include "tests/common/taehv_random.h"
#include "vae/taehv.h"

static int g_fail;

#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        sk_status s_ = (expr);                                                             \
        if (s_ != SK_OK) {                                                                 \
            fprintf(stderr, "check_taehv: %s failed: %s: %s\n", #expr, sk_status_name(s_), \
                    sk_error_message());                                                   \
            exit(2);                                                                       \
        }                                                                                  \
    } while (0)

static void report(const char *what, const float *got, const float *ref, size_t n, double nmse,
                   double atol, double rtol)
{
    sk_compare_result r = sk_compare(got, ref, n, nmse, atol, rtol);
    char line[512];
    sk_compare_format(&r, got, ref, line, sizeof line);
    printf("%-44s %s %s\n", what, r.ok ? "PASS" : "FAIL", line);
    if (!r.ok) g_fail = 1;
}

static sk_taehv *load(sk_backend *be, const char *path)
{
    sk_taehv_load_opts o = sk_taehv_load_opts_default();
    o.need_encoder = 1;
    sk_taehv *m = NULL;
    CHECK_OK(sk_taehv_load(be, path, &o, &m));
    return m;
}

static void correctness(const char *path, int z, int p, const char *tag, sk_backend *cpu,
                        sk_backend *gf32, sk_backend *gbf16)
{
    const int64_t F = 5, h = 4, w = 6;
    int64_t ls[4] = {F, z, h, w}, os[4], es[4];
    size_t nl = (size_t)(F * z * h * w);
    float *lat = malloc(nl * sizeof(float));
    sk_test_fill_normal(lat, nl, 11, 1.0f);
    sk_tensor lt = sk_tensor_desc(SK_DTYPE_F32, 4, ls);
    lt.data = lat;

    sk_taehv *mc = load(cpu, path), *m32 = load(gf32, path), *m16 = load(gbf16, path);
    float *ref = NULL, *got = NULL;
    CHECK_OK(sk_taehv_decode_video(mc, &lt, 0, &ref, os));
    const size_t n = (size_t)(os[0] * os[1] * os[2] * os[3]);
    char what[96];
    struct { sk_taehv *m; const char *name; double nmse, atol; } runs[2] = {
        {m32, "cuda f32", 1e-6, 2e-3}, {m16, "cuda bf16", 1e-3, 0.3}};
    for (int r = 0; r < 2; r++) {
        float *whole = NULL;
        CHECK_OK(sk_taehv_decode_video(runs[r].m, &lt, 0, &whole, os));
        snprintf(what, sizeof what, "%s decode %s vs cpu", tag, runs[r].name);
        report(what, whole, ref, n, runs[r].nmse, runs[r].atol, 0);
        const int chunks[2] = {3, 1};
        for (int k = 0; k < 2; k++) {
            CHECK_OK(sk_taehv_decode_video(runs[r].m, &lt, chunks[k], &got, os));
            snprintf(what, sizeof what, "%s decode %s chunk %d vs whole", tag, runs[r].name,
                     chunks[k]);
            report(what, got, whole, n, 1e-10, 1e-5, 0);
            free(got);
        }
        free(whole);
    }
    /* encode the CPU frames back */
    sk_tensor ft = sk_tensor_desc(SK_DTYPE_F32, 4, os);
    ft.data = ref;
    float *eref = NULL;
    CHECK_OK(sk_taehv_encode_video(mc, &ft, 0, &eref, es));
    const size_t ne = (size_t)(es[0] * es[1] * es[2] * es[3]);
    for (int r = 0; r < 2; r++) {
        CHECK_OK(sk_taehv_encode_video(runs[r].m, &ft, 3, &got, es));
        snprintf(what, sizeof what, "%s encode %s chunk 3 vs cpu", tag, runs[r].name);
        report(what, got, eref, ne, runs[r].nmse, runs[r].atol * 10, 0);
        free(got);
    }
    free(eref);
    free(ref);
    free(lat);
    sk_taehv_free(&mc);
    sk_taehv_free(&m32);
    sk_taehv_free(&m16);
}

static void timing(const char *path, int z, const char *tag, sk_backend *be, int64_t h, int64_t w)
{
    sk_taehv *m = load(be, path);
    const int chunk = 3, pushes = 7; /* 21 latents = 81 frames */
    int64_t ls[4] = {chunk, z, h, w};
    size_t nl = (size_t)(chunk * z * h * w);
    float *lat = malloc(nl * sizeof(float));
    sk_test_fill_normal(lat, nl, 5, 1.0f);
    sk_tensor dev;
    /* latents already on the GPU, as the DiT leaves them */
    CHECK_OK(sk_tensor_alloc(be, be->act_dtype, 4, ls, &dev));
    CHECK_OK(sk_tensor_upload_f32(&dev, lat, nl));
    sk_taehv_dec_stream *s = NULL;
    CHECK_OK(sk_taehv_dec_stream_create(m, h, w, chunk, &s));
    sk_tensor fr;
    CHECK_OK(sk_taehv_dec_stream_push(s, &dev, &fr)); /* warm-up (first chunk) */
    CHECK_OK(sk_backend_sync(be));
    double best = 1e30, tot = 0;
    for (int i = 0; i < pushes; i++) {
        double t0 = sk_progress_now();
        CHECK_OK(sk_taehv_dec_stream_push(s, &dev, &fr));
        CHECK_OK(sk_backend_sync(be));
        double dt = sk_progress_now() - t0;
        tot += dt;
        if (dt < best) best = dt;
    }
    printf("%-12s decode %lldx%lld latents -> %lldx%lld, chunk %d: %.1f ms/chunk (best %.1f), "
           "%.0f frames/s; scratch %.0f MiB, state %.0f MiB\n",
           tag, (long long)h, (long long)w, (long long)fr.shape[2], (long long)fr.shape[3], chunk,
           1e3 * tot / pushes, 1e3 * best, pushes * 4.0 * chunk / tot,
           sk_taehv_dec_stream_scratch_bytes(s) / 1048576.0,
           sk_taehv_dec_stream_state_bytes(s) / 1048576.0);
    sk_taehv_dec_stream_free(&s);
    sk_tensor_free(&dev);
    free(lat);

    /* encode 12 frames per push */
    const int64_t H = h * sk_taehv_get_config(m)->space_factor,
                  W = w * sk_taehv_get_config(m)->space_factor;
    int64_t fs[4] = {12, 3, H, W};
    size_t nf = (size_t)(12 * 3 * H * W);
    float *frames = malloc(nf * sizeof(float));
    sk_test_fill_uniform(frames, nf, 3, 0.0f, 1.0f);
    sk_tensor fdev;
    CHECK_OK(sk_tensor_alloc(be, be->act_dtype, 4, fs, &fdev));
    CHECK_OK(sk_tensor_upload_f32(&fdev, frames, nf));
    sk_taehv_enc_stream *e = NULL;
    CHECK_OK(sk_taehv_enc_stream_create(m, H, W, 12, &e));
    sk_tensor lo;
    CHECK_OK(sk_taehv_enc_stream_push(e, &fdev, &lo));
    CHECK_OK(sk_backend_sync(be));
    double t0 = sk_progress_now();
    for (int i = 0; i < 3; i++) CHECK_OK(sk_taehv_enc_stream_push(e, &fdev, &lo));
    CHECK_OK(sk_backend_sync(be));
    double dt = (sk_progress_now() - t0) / 3;
    printf("%-12s encode 12 frames %lldx%lld -> %lld latents: %.1f ms, %.0f frames/s\n", tag,
           (long long)W, (long long)H, (long long)lo.shape[0], 1e3 * dt, 12 / dt);
    sk_taehv_enc_stream_free(&e);
    sk_tensor_free(&fdev);
    free(frames);
    sk_taehv_free(&m);
}

int main(int argc, char **argv)
{
    int do_time = !(argc > 1 && !strcmp(argv[1], "--no-time"));
    sk_backend *cpu = NULL, *g32 = NULL, *g16 = NULL;
    CHECK_OK(sk_backend_cpu_create(&cpu));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_F32, &g32));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &g16));
    const int nf[4] = {256, 128, 64, 64};
    char p21[64], p22[64];
    snprintf(p21, sizeof p21, "/tmp/check_taehv_21_%d.safetensors", (int)getpid());
    snprintf(p22, sizeof p22, "/tmp/check_taehv_22_%d.safetensors", (int)getpid());
    CHECK_OK(sk_test_write_taehv_random(p21, 16, 1, nf, 64, 1, SK_DTYPE_F16, NULL));
    CHECK_OK(sk_test_write_taehv_random(p22, 48, 2, nf, 64, 2, SK_DTYPE_F16, NULL));
    correctness(p21, 16, 1, "taew2_1", cpu, g32, g16);
    correctness(p22, 48, 2, "taew2_2", cpu, g32, g16);
    if (do_time) {
        timing(p21, 16, "taew2_1 bf16", g16, 60, 104);
        timing(p22, 48, "taew2_2 bf16", g16, 44, 80);
        timing(p21, 16, "taew2_1 f32", g32, 60, 104);
    }
    unlink(p21);
    unlink(p22);
    sk_backend_free_(&g16);
    sk_backend_free_(&g32);
    sk_backend_free_(&cpu);
    printf("check_taehv: %s\n", g_fail ? "FAILED" : "all passed");
    return g_fail ? 1 : 0;
}
