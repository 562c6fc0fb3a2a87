/* stream_unipc.c - one chunk of LongLive 2.0 (spec-longlive2.md §2;
 * pipeline/causal_diffusion_inference.py _inference_inner): a fresh UniPC
 * solver (sampler/unipc.h) over the chunk's initial noise, N model calls at
 * t = 999, 937, ... (no fresh noise), the result m_{N-1}, then the clean pass
 * at t = 0 that leaves the chunk's clean K/V in the cache. With
 * --shot-clean-recache a cut chunk's clean pass sees only the global sink. With an image
 * (I2V) chunk 0's frame 0 is the image latent at t = 0 in every call and in the result
 * (pipeline/causal_diffusion_inference.py _overwrite_i2v_context, _zero_i2v_context_timestep:
 * its values inside the solver only ever reach frame 0, which is overwritten). */
#include "runtime/stream/stream_unipc.h"

#include "runtime/stream/v2v.h"

sk_status sk_stream_unipc_chunk(sk_stream *s, int64_t f0, int64_t n)
{
    const sk_unipc_table *tb = &s->p.unipc;
    sk_backend *be = s->be;
    sk_unipc_table tail;
    int k0 = 0; /* video-to-video: a fresh solver over the steps from k0 on (v2v.h) */
    if (s->in_lat && s->in_start > 0) {
        k0 = s->in_start;
        SK_TRY(sk_v2v_unipc_tail(tb, k0, &tail));
        tb = &tail;
    }
    sk_tensor x = sk_tensor_rows(&s->x, 0, n), v = sk_tensor_rows(&s->v, 0, n),
              x0 = sk_tensor_rows(&s->x0, 0, n), xc = sk_tensor_rows(&s->z, 0, n);
    sk_tensor m[3];
    for (int i = 0; i < 3; i++) m[i] = sk_tensor_rows(&s->um[i], 0, n);
    SK_TRY(sk_noise_initial(s->noise, &x, f0));
    if (k0 > 0) {
        sk_tensor in = sk_tensor_rows(s->in_lat, 0, n);
        SK_TRY(sk_v2v_noise_input(be, &x, &in, &x, tb->sigma[0]));
    }
    /* I2V: frame 0 of the stream is the image, at t = 0 in every call (stream_image.c) */
    const int i2v = s->image_lat.data && f0 == 0;
    sk_tensor x_f0 = sk_tensor_rows(&x, 0, 1), x0_f0 = sk_tensor_rows(&x0, 0, 1);
    for (int i = 0; i < tb->n; i++) {
        for (int64_t f = 0; f < n; f++) s->tbuf[f] = tb->t[i];
        if (i2v) {
            SK_TRY(sk_tensor_copy(&x_f0, &s->image_lat));
            s->tbuf[0] = 0.0f;
        }
        SK_TRY(sk_dit_forward(s->dit, s->kv, &x, s->tbuf, f0, &v));
        /* m_i = x_i - sigma_i v_i: the x0 prediction of the uncorrected input */
        sk_tensor *mi = &m[i % 3], *m1 = &m[(i + 2) % 3], *m2 = &m[(i + 1) % 3];
        SK_TRY(sk_sched_x0(be, mi, &x, &v, tb->sigma[i]));
        if (s->p.on_step) s->p.on_step(s->p.on_step_user, s->chunk_index, i + k0, &x, &v, mi);
        if (i == tb->n - 1) { /* sigma_n = 0, order 1: the result is m_{n-1} */
            SK_TRY(sk_tensor_copy(&x0, mi));
            break;
        }
        sk_unipc_update u;
        if (i == 0) {
            SK_TRY(sk_tensor_copy(&xc, &x));
        } else { /* UniC: correct the last sample with m_i */
            SK_TRY(sk_unipc_corrector(tb, i, &u));
            SK_TRY(sk_unipc_apply(be, &xc, &u, &xc, u.c[1] != 0.0f ? m2 : NULL, m1, mi));
        }
        SK_TRY(sk_unipc_predictor(tb, i, &u));
        SK_TRY(sk_unipc_apply(be, &x, &u, &xc, NULL, m1, mi));
    }
    if (i2v) SK_TRY(sk_tensor_copy(&x0_f0, &s->image_lat));
    if (s->p.kv_policy == SK_KV_MULTISHOT && s->p.shot_clean_recache)
        SK_TRY(sk_kv_multishot_clean_recache(s->kv));
    for (int64_t f = 0; f < n; f++) s->tbuf[f] = s->p.context_t;
    return sk_dit_forward(s->dit, s->kv, &x0, s->tbuf, f0, NULL);
}
