/* pp_transport.c - the loopback transport, and the NCCL stubs of builds
 * without NCCL (see pp_transport.h). */
#include "runtime/pp/pp_transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sk_pp_header_str(const sk_pp_header *h, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s of lane %d chunk %d pass %d (frames %lld..%lld, t %g, %llu bytes)",
             h->kind == SK_PP_MSG_HIDDEN ? "hidden state" : h->kind == SK_PP_MSG_LATENT ? "latents"
                                                                                         : "?",
             h->lane, h->chunk, h->pass, (long long)h->frame0,
             (long long)(h->frame0 + h->n_frames - 1), (double)h->t,
             (unsigned long long)h->bytes);
    return buf;
}

void sk_pp_transport_free(sk_pp_transport **t)
{
    if (!t || !*t) return;
    (*t)->ops->destroy(*t);
    *t = NULL;
}

/* ---- loopback ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int head, count;
    unsigned char *buf;   /* [depth][max_bytes] */
    sk_pp_header *hdr;    /* [depth] */
} lb_link;

typedef struct {
    lb_link *links;       /* [n_stages] */
    int n_init;           /* links with initialised mutexes */
    atomic_int aborted;
} lb_impl;

static sk_status lb_bind(sk_pp_transport *t, int stage)
{
    (void)t;
    (void)stage;
    return SK_OK;
}

static sk_status payload_size(const sk_pp_transport *t, sk_tensor *const *ts, int n, size_t *out)
{
    size_t b = 0;
    for (int i = 0; i < n; i++) b += sk_tensor_nbytes(ts[i]);
    SK_CHECK(b <= t->max_bytes, SK_E_INTERNAL,
             "pipeline transport: a message of %zu bytes; links carry up to %zu", b, t->max_bytes);
    *out = b;
    return SK_OK;
}

static sk_status aborted_err(void)
{
    return SK_ERR(SK_E_INTERNAL, "pipeline transport: stopped (another stage failed or the "
                  "stream was closed)");
}

static sk_status lb_send(sk_pp_transport *t, int from, const sk_pp_header *h, sk_tensor *const *ts,
                         int n)
{
    lb_impl *im = t->impl;
    SK_CHECK(from >= 0 && from < t->n_stages, SK_E_INTERNAL, "pipeline: send from stage %d", from);
    size_t bytes = 0;
    SK_TRY(payload_size(t, ts, n, &bytes));
    SK_CHECK(bytes == h->bytes, SK_E_INTERNAL, "pipeline: header says %llu bytes, payload %zu",
             (unsigned long long)h->bytes, bytes);
    lb_link *L = &im->links[from];
    pthread_mutex_lock(&L->mu);
    while (L->count == t->depth && !atomic_load(&im->aborted)) pthread_cond_wait(&L->cv, &L->mu);
    int slot = (L->head + L->count) % t->depth;
    pthread_mutex_unlock(&L->mu);
    if (atomic_load(&im->aborted)) return aborted_err();
    /* the slot is ours: the receiver reads only the first `count` slots from head */
    unsigned char *dst = L->buf + (size_t)slot * t->max_bytes;
    for (int i = 0; i < n; i++) {
        size_t nb = sk_tensor_nbytes(ts[i]);
        SK_TRY(sk_tensor_download_raw(ts[i], dst, nb));
        dst += nb;
    }
    L->hdr[slot] = *h;
    pthread_mutex_lock(&L->mu);
    L->count++;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return SK_OK;
}

static int same_header(const sk_pp_header *a, const sk_pp_header *b)
{
    return a->magic == b->magic && a->kind == b->kind && a->lane == b->lane &&
           a->chunk == b->chunk && a->pass == b->pass && a->frame0 == b->frame0 &&
           a->n_frames == b->n_frames && a->bytes == b->bytes &&
           memcmp(&a->t, &b->t, sizeof a->t) == 0;
}

static sk_status lb_recv(sk_pp_transport *t, int to, const sk_pp_header *expect,
                         sk_tensor *const *ts, int n)
{
    lb_impl *im = t->impl;
    SK_CHECK(to >= 0 && to < t->n_stages, SK_E_INTERNAL, "pipeline: recv at stage %d", to);
    size_t bytes = 0;
    SK_TRY(payload_size(t, ts, n, &bytes));
    lb_link *L = &im->links[(to - 1 + t->n_stages) % t->n_stages];
    pthread_mutex_lock(&L->mu);
    while (L->count == 0 && !atomic_load(&im->aborted)) pthread_cond_wait(&L->cv, &L->mu);
    int slot = L->head;
    pthread_mutex_unlock(&L->mu);
    if (atomic_load(&im->aborted)) return aborted_err();
    const sk_pp_header *h = &L->hdr[slot];
    if (!same_header(h, expect) || bytes != expect->bytes) {
        char a[160], b[160];
        return SK_ERR(SK_E_INTERNAL, "pipeline: stage %d expected the %s, got the %s (a "
                      "schedule bug)", to, sk_pp_header_str(expect, a, sizeof a),
                      sk_pp_header_str(h, b, sizeof b));
    }
    const unsigned char *src = L->buf + (size_t)slot * t->max_bytes;
    for (int i = 0; i < n; i++) {
        size_t nb = sk_tensor_nbytes(ts[i]);
        SK_TRY(sk_tensor_upload_raw(ts[i], src, nb));
        src += nb;
    }
    pthread_mutex_lock(&L->mu);
    L->head = (L->head + 1) % t->depth;
    L->count--;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return SK_OK;
}

static sk_status lb_flush(sk_pp_transport *t, int stage)
{
    (void)t;
    (void)stage;
    return SK_OK; /* a send has copied its bytes before it returns */
}

static void lb_abort(sk_pp_transport *t)
{
    lb_impl *im = t->impl;
    atomic_store(&im->aborted, 1);
    for (int k = 0; k < im->n_init; k++) {
        pthread_mutex_lock(&im->links[k].mu);
        pthread_cond_broadcast(&im->links[k].cv);
        pthread_mutex_unlock(&im->links[k].mu);
    }
}

static void lb_destroy(sk_pp_transport *t)
{
    lb_impl *im = t->impl;
    if (im) {
        for (int k = 0; k < im->n_init; k++) {
            pthread_mutex_destroy(&im->links[k].mu);
            pthread_cond_destroy(&im->links[k].cv);
        }
        for (int k = 0; im->links && k < t->n_stages; k++) {
            free(im->links[k].buf);
            free(im->links[k].hdr);
        }
        free(im->links);
        free(im);
    }
    free(t);
}

static const sk_pp_transport_ops lb_ops = {
    .name = "loopback", .bind = lb_bind, .send = lb_send, .recv = lb_recv,
    .flush = lb_flush, .abort = lb_abort, .destroy = lb_destroy,
};

sk_status sk_pp_transport_loopback(int n_stages, size_t max_bytes, int depth,
                                   sk_pp_transport **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_pp_transport_loopback: NULL argument");
    *out = NULL;
    SK_CHECK(n_stages >= 1 && depth >= 1 && max_bytes >= 1, SK_E_INVALID_ARG,
             "pipeline loopback: %d stages, depth %d, %zu bytes", n_stages, depth, max_bytes);
    sk_pp_transport *t = calloc(1, sizeof *t);
    lb_impl *im = calloc(1, sizeof *im);
    if (!t || !im) {
        free(t);
        free(im);
        return SK_ERR(SK_E_OOM, "pipeline loopback: out of host memory");
    }
    t->ops = &lb_ops;
    t->n_stages = n_stages;
    t->max_bytes = max_bytes;
    t->depth = depth;
    t->impl = im;
    atomic_init(&im->aborted, 0);
    im->links = calloc((size_t)n_stages, sizeof *im->links);
    if (!im->links) goto oom;
    for (int k = 0; k < n_stages; k++) {
        lb_link *L = &im->links[k];
        L->buf = malloc(max_bytes * (size_t)depth);
        L->hdr = calloc((size_t)depth, sizeof *L->hdr);
        if (!L->buf || !L->hdr) goto oom;
        pthread_mutex_init(&L->mu, NULL);
        pthread_cond_init(&L->cv, NULL);
        im->n_init = k + 1;
    }
    *out = t;
    return SK_OK;
oom:
    lb_destroy(t);
    return SK_ERR(SK_E_OOM, "pipeline loopback: out of host memory for %d links of %d x %zu bytes",
                  n_stages, depth, max_bytes);
}
