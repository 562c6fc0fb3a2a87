/* session_stats.c - measuring a session of runtime/sinkstream.h (session
 * params stats, profile): each chunk's time, a hash of its latents, the
 * allocations of the chunk loop, one chunk's time by op; and the engine's
 * device counters (sk_engine_get_stats). `sinkstream bench` is built on it.
 *
 * How a chunk is timed (moved from tools/cmd_bench.c, unchanged): on CUDA,
 * unless outputs need the host each chunk or the chunk is profiled, CUDA
 * events recorded before and after the chunk's work on the DiT's stream with
 * no host wait in between, as a server feeding an on-device consumer runs
 * (host time spent before the device reaches the chunk's work, e.g. recording
 * a graph, shows up as device idle inside the chunk); with the VAE overlapped,
 * chunk k > 0 runs from the end of chunk k-1's decode to the end of its own
 * (frames out per chunk). Otherwise the host clock around the chunk and a
 * sync. Each chunk's x0 is copied on the device into a ring and hashed (a
 * download) before a later chunk starts its timer, or when stats are read.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/engine/engine_impl.h"
#include "runtime/engine/op_profile.h"

#define RING_MAX 16

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void sk_engine_sample_memory(sk_engine *e)
{
    sk_cuda_stats cs;
    if (!e->be || sk_cuda_get_stats(e->be, &cs) != SK_OK) return;
    pthread_mutex_lock(&e->mu);
    if (!e->mem_min_free || cs.mem_free < e->mem_min_free) e->mem_min_free = cs.mem_free;
    e->mem_total = cs.mem_total;
    pthread_mutex_unlock(&e->mu);
}

static uint64_t mallocs_now(sk_backend *be)
{
    sk_cuda_stats cs;
    return be && sk_cuda_get_stats(be, &cs) == SK_OK ? cs.device_mallocs : 0;
}

sk_status sk_meter_create(sk_session *s)
{
    const sk_session_params *p = &s->p;
    SK_CHECK(p->stats || !p->profile, SK_E_INVALID_ARG, "session: profile needs stats = 1");
    if (!p->stats) return SK_OK;
    sk_engine *e = s->e;
    SK_CHECK(e->m, SK_E_INVALID_ARG, "session: stats time the DiT's chunks; this engine has no "
             "DiT");
    SK_CHECK(!p->profile || (p->profile_chunk >= 0 && !e->pipelined), p->profile_chunk < 0
             ? SK_E_INVALID_ARG : SK_E_UNSUPPORTED, "session: profile_chunk %lld: %s",
             (long long)p->profile_chunk, p->profile_chunk < 0 ? "expected a chunk >= 0"
             : "op profiles of pipeline stages are not supported");
    sk_session_meter *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "session: out of host memory for stats");
    s->meter = m;
    m->prof_chunk = -1;
    /* chunks of a bounded session; an unbounded one grows its arrays and uses the host clock */
    const int64_t n = p->frames > 0 ? (p->frames + s->chunk - 1) / s->chunk : 0;
    m->cap = n > 0 ? n : 64;
    m->ms = calloc((size_t)m->cap, sizeof *m->ms);
    m->hash = calloc((size_t)m->cap, sizeof *m->hash);
    m->R = n > 0 && n < RING_MAX ? (int)n : RING_MAX;
    m->ring_rows = calloc((size_t)m->R, sizeof *m->ring_rows);
    const int64_t C = e->m->cfg.out_dim;
    const size_t es = sk_dtype_size(e->act) > 8 ? sk_dtype_size(e->act) : 8;
    m->x0_host = malloc((size_t)(s->chunk * C * p->latent_h * p->latent_w) * es);
    SK_CHECK(m->ms && m->hash && m->ring_rows && m->x0_host, SK_E_OOM, "session: out of host "
             "memory for stats");
    int64_t rs[4] = {m->R * s->chunk, C, p->latent_h, p->latent_w};
    SK_TRY(sk_tensor_alloc(e->be, e->be->act_dtype, 4, rs, &m->ring));
    if (n > 0 && sk_cuda_backend_stream(e->be)) {
        SK_TRY(sk_cuda_timer_create(e->be, (int)(2 * n), &m->tm));
        if (s->dec && sk_vae_pipe_overlapped(s->dec))
            SK_TRY(sk_cuda_timer_create(e->be, (int)n, &m->tv));
    }
    return SK_OK;
}

void sk_meter_free(sk_session *s)
{
    sk_session_meter *m = s->meter;
    if (!m) return;
    if (m->profiling) sk_meter_step_failed(s);
    sk_cuda_timer_free(&m->tm);
    sk_cuda_timer_free(&m->tv);
    sk_tensor_free(&m->ring);
    free(m->ms);
    free(m->hash);
    free(m->ring_rows);
    free(m->x0_host);
    free(m->ops);
    free(m);
    s->meter = NULL;
}

/* Downloads the x0 copies held in the ring and hashes them as the chunks before the next. */
static sk_status hash_ring(sk_session_meter *m, int64_t chunk_rows)
{
    const int64_t first = m->n - m->held;
    for (int i = 0; i < m->held; i++) {
        sk_tensor t = sk_tensor_rows(&m->ring, i * chunk_rows, m->ring_rows[i]);
        size_t nb = sk_tensor_nbytes(&t);
        SK_TRY(sk_tensor_download_raw(&t, m->x0_host, nb));
        m->hash[first + i] = fnv(m->x0_host, nb, 0xcbf29ce484222325ull);
    }
    m->held = 0;
    return SK_OK;
}

sk_status sk_meter_chunk_begin(sk_session *s)
{
    sk_session_meter *m = s->meter;
    if (!m) return SK_OK;
    sk_engine *e = s->e;
    if (m->n == m->cap) { /* unbounded: more room (host memory, outside the backend) */
        double *ms = realloc(m->ms, (size_t)(2 * m->cap) * sizeof *ms);
        if (ms) m->ms = ms;
        uint64_t *h = realloc(m->hash, (size_t)(2 * m->cap) * sizeof *h);
        if (h) m->hash = h;
        SK_CHECK(ms && h, SK_E_OOM, "session stats: out of host memory");
        m->cap *= 2;
    }
    if (m->held == m->R) SK_TRY(hash_ring(m, s->chunk));
    const int prof = s->p.profile && m->n == s->p.profile_chunk;
    if (!m->decided) {
        m->events = m->tm && !s->p.profile && sk_session_first_output(s) == NULL;
        m->decided = 1;
    }
    if (prof) {
        pthread_mutex_lock(&e->mu);
        const int alone = e->n_sessions == 1;
        pthread_mutex_unlock(&e->mu);
        SK_CHECK(alone, SK_E_UNSUPPORTED, "session: the op profile of chunk %lld needs the "
                 "engine's only session (the op table is the engine's)", (long long)m->n);
        SK_TRY(sk_op_profile_begin(e->be, &e->m->cfg));
        m->profiling = 1;
    }
    m->a0 = e->be->n_allocs;
    m->v0 = e->vae_be ? e->vae_be->n_allocs : 0;
    m->m0 = mallocs_now(e->be);
    m->t0 = sk_progress_now();
    if (m->events) sk_cuda_timer_mark(m->tm);
    return SK_OK;
}

void sk_meter_phase(sk_session *s, const char *phase)
{
    if (s->meter && s->meter->profiling) sk_op_profile_phase(phase);
}

void sk_meter_after_decode(sk_session *s)
{
    sk_session_meter *m = s->meter;
    if (m && m->events && m->tv) sk_cuda_timer_mark_on(m->tv, s->e->vae_be);
}

static void count_allocs(sk_session *s)
{
    sk_session_meter *m = s->meter;
    sk_engine *e = s->e;
    m->allocs += e->be->n_allocs - m->a0 + (e->vae_be ? e->vae_be->n_allocs - m->v0 : 0);
    m->mallocs += mallocs_now(e->be) - m->m0;
}

sk_status sk_meter_chunk_end(sk_session *s, const sk_tensor *x0)
{
    sk_session_meter *m = s->meter;
    if (!m) return SK_OK;
    sk_engine *e = s->e;
    const int64_t k = m->n;
    if (m->events) {
        sk_cuda_timer_mark(m->tm);
    } else {
        SK_TRY(sk_backend_sync(e->be));
        m->ms[k] = 1e3 * (sk_progress_now() - m->t0);
    }
    count_allocs(s);
    if (m->profiling) {
        sk_op_time *ops = NULL;
        int n = 0;
        m->profiling = 0;
        sk_status st = sk_op_profile_end(&ops, &n);
        if (st != SK_OK) return st;
        free(m->ops);
        m->ops = ops;
        m->n_ops = n;
        m->prof_ms = m->ms[k];
        m->prof_chunk = k;
    }
    const int64_t rows = x0->shape[0];
    SK_CHECK(rows >= 1 && rows <= s->chunk, SK_E_INTERNAL, "session stats: chunk %lld has %lld "
             "frames", (long long)k, (long long)rows);
    sk_tensor dst = sk_tensor_rows(&m->ring, m->held * s->chunk, rows);
    SK_TRY(sk_tensor_copy(&dst, x0));
    m->ring_rows[m->held++] = rows;
    m->n++;
    if (!m->events) {
        sk_engine_sample_memory(e);
        SK_LOGI("session: chunk %lld (frames %lld..%lld): %.1f ms", (long long)k,
                (long long)s->x0_frame0, (long long)(s->x0_frame0 + rows - 1), m->ms[k]);
    }
    return SK_OK;
}

void sk_meter_step_failed(sk_session *s)
{
    sk_session_meter *m = s->meter;
    if (!m || !m->profiling) return;
    sk_op_time *ops = NULL;
    int n = 0;
    (void)sk_op_profile_end(&ops, &n);
    free(ops);
    m->profiling = 0;
}

void sk_meter_alloc_begin(sk_session *s)
{
    sk_session_meter *m = s->meter;
    if (!m) return;
    m->a0 = s->e->be ? s->e->be->n_allocs : 0;
    m->v0 = s->e->vae_be ? s->e->vae_be->n_allocs : 0;
    m->m0 = mallocs_now(s->e->be);
}

void sk_meter_alloc_end(sk_session *s)
{
    if (s->meter && s->e->be) count_allocs(s);
}

sk_status sk_session_get_stats(sk_session *s, sk_session_stats *out)
{
    SK_API_SESSION(s);
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_session_get_stats: out is NULL");
    memset(out, 0, sizeof *out);
    out->profile_chunk = -1;
    sk_session_meter *m = s->meter;
    SK_CHECK(m, SK_E_INVALID_ARG, "sk_session_get_stats: the session was made without stats "
             "(session params stats = 1)");
    sk_engine *e = s->e;
    SK_TRY(sk_backend_sync(e->be));
    if (e->vae_be) SK_TRY(sk_backend_sync(e->vae_be));
    sk_engine_sample_memory(e);
    if (m->events) { /* read the marks of the chunks not read yet */
        for (int64_t k = 0; k < m->n; k++) {
            float ms = 0;
            if (m->tv)
                SK_TRY(k == 0 ? sk_cuda_timer_elapsed2(m->tm, 0, m->tv, 0, &ms)
                              : sk_cuda_timer_elapsed2(m->tv, (int)k - 1, m->tv, (int)k, &ms));
            else
                SK_TRY(sk_cuda_timer_elapsed(m->tm, (int)(2 * k), (int)(2 * k + 1), &ms));
            m->ms[k] = ms;
        }
    }
    SK_TRY(hash_ring(m, s->chunk));
    out->chunks = m->n;
    out->chunk_ms = m->ms;
    out->chunk_hash = m->hash;
    out->timer = m->events ? "cuda events" : "host clock";
    out->backend_allocs = m->allocs;
    out->device_mallocs = m->mallocs;
    if (s->s) {
        out->graph_records = s->s->dit->n_graph_records;
        out->graph_replays = s->s->dit->n_graph_replays;
        out->kv_cache_bytes = (int64_t)sk_kv_bytes(s->s->kv);
    }
    out->vae_overlapped = s->dec && sk_vae_pipe_overlapped(s->dec);
    out->profile_chunk = m->prof_chunk;
    out->profile_timer = sk_cuda_backend_stream(e->be) ? "cuda events" : "host clock";
    out->profile_chunk_ms = m->prof_ms;
    out->ops = m->ops;
    out->n_ops = m->n_ops;
    return SK_OK;
}

sk_status sk_engine_get_stats(sk_engine *e, sk_engine_stats *out)
{
    SK_CHECK(e && sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_engine_get_stats: %s engine",
             e ? "not a live" : "NULL");
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_engine_get_stats: out is NULL");
    memset(out, 0, sizeof *out);
    if (!e->be) return SK_OK; /* a text-only engine */
    sk_engine_sample_memory(e);
    snprintf(out->backend, sizeof out->backend, "%s", e->be->name);
    sk_cuda_stats cs;
    memset(&cs, 0, sizeof cs);
    const int cuda = sk_cuda_get_stats(e->be, &cs) == SK_OK;
    size_t peak = e->be->bytes_peak + cs.fixed_bytes;
    uint64_t allocs = e->be->n_allocs;
    if (e->vae_be) { /* the decoder's own backend */
        sk_cuda_stats vs;
        peak += e->vae_be->bytes_peak;
        if (sk_cuda_get_stats(e->vae_be, &vs) == SK_OK) peak += vs.fixed_bytes;
        allocs += e->vae_be->n_allocs;
    }
    out->backend_peak_bytes = (int64_t)peak;
    out->backend_allocs = allocs;
    if (cuda) {
        snprintf(out->gpu, sizeof out->gpu, "%s", cs.device_name);
        out->device_mallocs = cs.device_mallocs;
        out->graph_captures = cs.graphs.captures;
        out->graph_instantiations = cs.graphs.instantiations;
        out->graph_updates = cs.graphs.updates;
        out->graph_launches = cs.graphs.launches;
        out->graph_capture_ms = cs.graphs.capture_ms;
    }
    pthread_mutex_lock(&e->mu);
    if (e->mem_total) {
        out->device_total = (int64_t)e->mem_total;
        out->device_used_peak = (int64_t)(e->mem_total - e->mem_min_free);
        out->device_used_at_open = e->mem_free_at_open
                                       ? (int64_t)(e->mem_total - e->mem_free_at_open) : 0;
    }
    pthread_mutex_unlock(&e->mu);
    return SK_OK;
}
