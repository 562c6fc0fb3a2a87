/* stream_rolling.c - Rolling Forcing's chunk loop (spec-kv-sink-policies.md
 * §4; docs/KV_POLICIES.md "rolling").
 *
 * With T denoising steps (t_0 > ... > t_{T-1}) the window holds up to T
 * blocks (chunks) of `chunk` frames at increasing noise: in window w, block
 * b (start <= b <= w, start = max(0, w - T + 1)) is at step k = w - b. One
 * DiT forward denoises the whole window jointly (per-frame timesteps, one
 * pass in the KV cache: sink + the newest clean frames + the window, never
 * committed); then every block's x0 = x - sigma_k v; blocks with k < T-1 are
 * re-noised to sigma_{k+1} with fresh noise (renoise.{b}.{k}); the block at
 * k = T-1 leaves clean: its x0 is the output and one t = 0 pass over it alone
 * commits its K/V. Block w enters window w as pure noise (noise[w*chunk..]).
 * After the last block entered, the window shrinks until every block left.
 * sk_stream_step returns one block: the first call runs T windows.
 *
 * A failed window leaves everything as before it (the noisy state is
 * written back only after the commit).
 */
#include "runtime/stream/stream_rolling.h"

#include "runtime/core/log.h"

sk_status sk_stream_rolling_init(sk_stream *s)
{
    const int64_t T = s->p.sched.n, n = s->p.chunk_frames;
    const sk_dit_config *cf = &s->m->cfg;
    int64_t ws[4] = {T * n, cf->in_dim, s->p.latent_h, s->p.latent_w};
    int64_t zs[4] = {n, cf->in_dim, s->p.latent_h, s->p.latent_w};
    sk_dtype dt = s->be->act_dtype;
    SK_TRY(sk_tensor_alloc(s->be, dt, 4, ws, &s->roll_state));
    SK_TRY(sk_tensor_alloc(s->be, dt, 4, ws, &s->roll_x));
    SK_TRY(sk_tensor_alloc(s->be, dt, 4, ws, &s->roll_v));
    SK_TRY(sk_tensor_alloc(s->be, dt, 4, ws, &s->roll_x0));
    SK_TRY(sk_tensor_alloc(s->be, dt, 4, zs, &s->roll_z));
    s->roll_w = 0;
    return SK_OK;
}

/* One window; *exited = 1 when its oldest block left (then committed). */
static sk_status window(sk_stream *s, int64_t w, int *exited)
{
    const sk_schedule *sc = &s->p.sched;
    const int64_t T = sc->n, n = s->p.chunk_frames;
    const int64_t nb = s->p.frames > 0 ? s->p.frames / n : INT64_MAX;
    const int64_t start = w - T + 1 > 0 ? w - T + 1 : 0, end = w < nb - 1 ? w : nb - 1;
    const int64_t f0 = start * n, nf = (end - start + 1) * n;
    sk_backend *be = s->be;
    *exited = w - start == T - 1;
    /* the ordered window input: kept noisy states, the entering block as pure noise */
    for (int64_t b = start; b <= end; b++) {
        sk_tensor dst = sk_tensor_rows(&s->roll_x, (b - start) * n, n);
        if (b == w) {
            SK_TRY(sk_noise_initial(s->noise, &dst, b * n));
        } else {
            sk_tensor src = sk_tensor_rows(&s->roll_state, (b % T) * n, n);
            SK_TRY(sk_tensor_copy(&dst, &src));
        }
        for (int64_t f = 0; f < n; f++) s->tbuf[(b - start) * n + f] = sc->t[w - b];
    }
    sk_tensor x = sk_tensor_rows(&s->roll_x, 0, nf), v = sk_tensor_rows(&s->roll_v, 0, nf);
    SK_TRY(sk_kv_begin_window(s->kv, f0, nf));
    sk_status st = sk_dit_forward(s->dit, s->kv, &x, s->tbuf, f0, &v);
    sk_kv_abort(s->kv); /* the window's own K/V are never kept */
    SK_TRY(st);
    /* x0 per block; re-noise all but the leaving one (into roll_x, written back later) */
    for (int64_t b = start; b <= end; b++) {
        const int k = (int)(w - b);
        sk_tensor xb = sk_tensor_rows(&s->roll_x, (b - start) * n, n),
                  vb = sk_tensor_rows(&s->roll_v, (b - start) * n, n),
                  x0b = sk_tensor_rows(&s->roll_x0, (b - start) * n, n);
        SK_TRY(sk_sched_x0(be, &x0b, &xb, &vb, sc->sigma[k]));
        if (s->p.on_step) s->p.on_step(s->p.on_step_user, (int)b, k, &xb, &vb, &x0b);
        if (k + 1 < T) {
            SK_TRY(sk_noise_renoise(s->noise, &s->roll_z, b * n, (int)b, k));
            SK_TRY(sk_sched_renoise(be, &xb, &x0b, &s->roll_z, sc->sigma[k + 1]));
        }
    }
    if (*exited) {
        /* the leaving block's clean K/V: one t = 0 pass over it alone, committed */
        sk_tensor x0 = sk_tensor_rows(&s->roll_x0, 0, n);
        for (int64_t f = 0; f < n; f++) s->tbuf[f] = s->p.context_t;
        SK_TRY(sk_kv_begin_chunk(s->kv, f0, n));
        st = sk_dit_forward(s->dit, s->kv, &x0, s->tbuf, f0, NULL);
        /* keep the clean latents for a later prompt-switch recache (ring by frame; the
         * sink frames also apart for --recache-sink), as sk_stream_step does */
        for (int64_t f = 0; st == SK_OK && s->p.prompt_switch && f < n; f++) {
            sk_tensor dst = sk_tensor_rows(&s->ring, (f0 + f) % s->p.kv_window, 1);
            sk_tensor src = sk_tensor_rows(&x0, f, 1);
            st = sk_tensor_copy(&dst, &src);
            if (st == SK_OK && s->sink_lat.data && f0 + f < s->sink_lat.shape[0]) {
                sk_tensor ds = sk_tensor_rows(&s->sink_lat, f0 + f, 1);
                st = sk_tensor_copy(&ds, &src);
            }
        }
        if (st != SK_OK) {
            sk_kv_abort(s->kv);
            return st;
        }
        sk_kv_commit(s->kv);
    }
    /* from here on the window happened: keep the blocks that stay */
    for (int64_t b = start; b <= end; b++) {
        if (w - b + 1 >= T) continue;
        sk_tensor dst = sk_tensor_rows(&s->roll_state, (b % T) * n, n);
        sk_tensor src = sk_tensor_rows(&s->roll_x, (b - start) * n, n);
        st = sk_tensor_copy(&dst, &src);
        if (st != SK_OK) {
            s->broken = 1;
            return st;
        }
    }
    return SK_OK;
}

sk_status sk_stream_rolling_step(sk_stream *s, sk_tensor *x0, int64_t *frame0)
{
    const int64_t n = s->p.chunk_frames;
    for (;;) {
        int exited = 0;
        const int64_t w = s->roll_w, f0 = s->next_frame;
        sk_status st = window(s, w, &exited);
        if (st != SK_OK) {
            sk_error_prefix("rolling window %lld (frames from %lld): ", (long long)w,
                            (long long)f0);
            return st;
        }
        s->roll_w++;
        if (exited) {
            s->next_frame = f0 + n;
            s->chunk_index++;
            if (x0) *x0 = sk_tensor_rows(&s->roll_x0, 0, n);
            if (frame0) *frame0 = f0;
            return SK_OK;
        }
    }
}
