/* pp_nccl.cu - the NCCL transport of pipeline parallelism (runtime/pp/pp_transport.h)
 * and sk_pp_bind_backend for CUDA builds.
 *
 * One GPU per stage. Every link k (stage k -> stage (k + 1) % n) is its own
 * two-rank communicator (rank 0 the sender's GPU, rank 1 the receiver's), so
 * each rank of a communicator only ever sends or only ever receives, in
 * order: no operation of a link can wait behind one of another link. With one
 * stage the link is a one-rank communicator and a send is paired with the
 * next receive in one ncclGroup (NCCL's self send/recv).
 *
 * A message is a 256-byte header followed by the payload, in one device slot:
 *  send: (on the backend's compute stream) header H2D from pinned memory,
 *        payload D2D into the slot, event `ready`; the link's send stream
 *        waits for `ready`, ncclSend, event `done`. The compute stream never
 *        waits for the peer; the host waits only to reuse a slot whose send
 *        has not completed (depth messages back).
 *  recv: the link's receive stream waits until the slot's previous message
 *        was copied out (event `consumed`), ncclRecv, event `arrived`; the
 *        compute stream waits for `arrived`, copies the payload into the
 *        tensors and the header to pinned memory, event `consumed`. The header
 *        is compared with the expected one when the slot comes round again and
 *        at flush (a deferred check: the host does not wait for the data).
 * NCCL_NVLS_ENABLE=0 (no NVLink multicast) is forced before any communicator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "runtime/pp/pp_plan.h"
#include "runtime/pp/pp_transport.h"

extern "C" sk_status sk_pp_bind_backend(sk_backend *be)
{
    if (!be || !be->name || strcmp(be->name, "cuda") != 0) return SK_OK;
    SK_CU("pipeline bind", cudaSetDevice(sk_cuda(be)->device));
    return SK_OK;
}

#ifdef SK_HAVE_NCCL
#include <atomic>
#include <new>
#include <nccl.h>

#define HDR 256
#define MAXD 64

#define SK_NCCL(op, call)                                                                      \
    do {                                                                                       \
        ncclResult_t sk_nc_r_ = (call);                                                        \
        if (sk_nc_r_ != ncclSuccess)                                                           \
            return SK_ERR(SK_E_CUDA, "NCCL %s: %s (%d) in %s", (op),                           \
                          ncclGetErrorString(sk_nc_r_), (int)sk_nc_r_, #call);                 \
    } while (0)

typedef struct {
    ncclComm_t comm[2];     /* [0] sender rank, [1] receiver rank (one comm when self) */
    int self;
    int dev_send, dev_recv;
    size_t slot_bytes;
    /* sender side (dev_send) */
    cudaStream_t s_stream;
    unsigned char *s_slot[MAXD];
    cudaEvent_t s_ready[MAXD], s_done[MAXD];
    unsigned char *s_hdr;   /* pinned [depth][HDR] */
    int s_used[MAXD];
    uint64_t s_next;
    /* self link: sends waiting for their receive */
    int pend[MAXD];
    size_t pend_bytes[MAXD];
    int pend_head, pend_count;
    /* receiver side (dev_recv) */
    cudaStream_t r_stream;
    unsigned char *r_slot[MAXD];
    cudaEvent_t r_arrived[MAXD], r_consumed[MAXD];
    unsigned char *r_hdr;   /* pinned [depth][HDR] */
    sk_pp_header r_expect[MAXD];
    int r_check[MAXD];      /* 1: header of that slot still to compare */
    uint64_t r_next;
} nc_link;

typedef struct {
    int devs[SK_PP_MAX_STAGES];
    cudaStream_t cs[SK_PP_MAX_STAGES]; /* each stage backend's compute stream */
    nc_link links[SK_PP_MAX_STAGES];
    int n_comms_made;
    std::atomic<int> aborted;
} nc_impl;

static sk_status nc_bind(sk_pp_transport *t, int stage)
{
    nc_impl *im = (nc_impl *)t->impl;
    SK_CHECK(stage >= 0 && stage < t->n_stages, SK_E_INTERNAL, "pipeline: bind stage %d", stage);
    SK_CU("pipeline bind", cudaSetDevice(im->devs[stage]));
    return SK_OK;
}

static sk_status stopped(void)
{
    return SK_ERR(SK_E_INTERNAL, "pipeline transport: stopped (another stage failed or the "
                  "stream was closed)");
}

static int same_header(const sk_pp_header *a, const sk_pp_header *b)
{
    return a->magic == b->magic && a->kind == b->kind && a->lane == b->lane &&
           a->chunk == b->chunk && a->pass == b->pass && a->frame0 == b->frame0 &&
           a->n_frames == b->n_frames && a->bytes == b->bytes && memcmp(&a->t, &b->t, 4) == 0;
}

/* Compares the header that arrived in slot i with the one expected (after
 * the slot's copies are done). */
static sk_status check_slot(sk_pp_transport *t, nc_link *L, int to, int i)
{
    if (!L->r_check[i]) return SK_OK;
    SK_CU("pipeline recv", cudaEventSynchronize(L->r_consumed[i]));
    L->r_check[i] = 0;
    sk_pp_header got;
    memcpy(&got, L->r_hdr + (size_t)i * HDR, sizeof got);
    if (!same_header(&got, &L->r_expect[i])) {
        char a[160], b[160];
        return SK_ERR(SK_E_INTERNAL, "pipeline (NCCL): stage %d expected the %s, got the %s (a "
                      "schedule bug)", to, sk_pp_header_str(&L->r_expect[i], a, sizeof a),
                      sk_pp_header_str(&got, b, sizeof b));
    }
    (void)t;
    return SK_OK;
}

static sk_status payload(const sk_pp_transport *t, sk_tensor *const *ts, int n, size_t *out)
{
    size_t b = 0;
    for (int i = 0; i < n; i++) b += sk_tensor_nbytes(ts[i]);
    SK_CHECK(b <= t->max_bytes, SK_E_INTERNAL,
             "pipeline transport: a message of %zu bytes; links carry up to %zu", b, t->max_bytes);
    *out = b;
    return SK_OK;
}

static sk_status nc_send(sk_pp_transport *t, int from, const sk_pp_header *h, sk_tensor *const *ts,
                         int n)
{
    nc_impl *im = (nc_impl *)t->impl;
    if (im->aborted.load()) return stopped();
    SK_CHECK(from >= 0 && from < t->n_stages, SK_E_INTERNAL, "pipeline: send from stage %d", from);
    nc_link *L = &im->links[from];
    size_t bytes;
    SK_TRY(payload(t, ts, n, &bytes));
    SK_CHECK(bytes == h->bytes, SK_E_INTERNAL, "pipeline: header says %llu bytes, payload %zu",
             (unsigned long long)h->bytes, bytes);
    cudaStream_t cs = im->cs[from];
    /* self-loop: a slot still waiting for its receive must not be reused */
    SK_CHECK(!L->self || L->pend_count < t->depth, SK_E_INTERNAL,
             "pipeline: self-loop overflow (%d sends wait for their receive)", L->pend_count);
    const int i = (int)(L->s_next++ % (uint64_t)t->depth);
    if (L->s_used[i]) SK_CU("pipeline send", cudaEventSynchronize(L->s_done[i]));
    if (im->aborted.load()) return stopped();
    memset(L->s_hdr + (size_t)i * HDR, 0, HDR);
    memcpy(L->s_hdr + (size_t)i * HDR, h, sizeof *h);
    SK_CU("pipeline send", cudaMemcpyAsync(L->s_slot[i], L->s_hdr + (size_t)i * HDR, HDR,
                                           cudaMemcpyHostToDevice, cs));
    size_t off = HDR;
    for (int j = 0; j < n; j++) {
        size_t nb = sk_tensor_nbytes(ts[j]);
        SK_CU("pipeline send", cudaMemcpyAsync(L->s_slot[i] + off, ts[j]->data, nb,
                                               cudaMemcpyDeviceToDevice, cs));
        off += nb;
    }
    SK_CU("pipeline send", cudaEventRecord(L->s_ready[i], cs));
    L->s_used[i] = 1;
    if (L->self) { /* paired with the next receive */
        int q = (L->pend_head + L->pend_count++) % t->depth;
        L->pend[q] = i;
        L->pend_bytes[q] = HDR + bytes;
        return SK_OK;
    }
    SK_CU("pipeline send", cudaStreamWaitEvent(L->s_stream, L->s_ready[i], 0));
    SK_NCCL("send", ncclSend(L->s_slot[i], HDR + bytes, ncclUint8, 1, L->comm[0], L->s_stream));
    SK_CU("pipeline send", cudaEventRecord(L->s_done[i], L->s_stream));
    return SK_OK;
}

static sk_status nc_recv(sk_pp_transport *t, int to, const sk_pp_header *expect,
                         sk_tensor *const *ts, int n)
{
    nc_impl *im = (nc_impl *)t->impl;
    if (im->aborted.load()) return stopped();
    SK_CHECK(to >= 0 && to < t->n_stages, SK_E_INTERNAL, "pipeline: recv at stage %d", to);
    nc_link *L = &im->links[(to - 1 + t->n_stages) % t->n_stages];
    size_t bytes;
    SK_TRY(payload(t, ts, n, &bytes));
    SK_CHECK(bytes == expect->bytes, SK_E_INTERNAL, "pipeline: expected %llu bytes, tensors hold %zu",
             (unsigned long long)expect->bytes, bytes);
    cudaStream_t cs = im->cs[to];
    const int i = (int)(L->r_next++ % (uint64_t)t->depth);
    SK_TRY(check_slot(t, L, to, i));
    /* NCCL may overwrite the slot only after its last message was copied out */
    SK_CU("pipeline recv", cudaStreamWaitEvent(L->r_stream, L->r_consumed[i], 0));
    if (L->self) {
        SK_CHECK(L->pend_count > 0, SK_E_INTERNAL, "pipeline: a receive on the self-loop with "
                 "nothing sent");
        int q = L->pend_head;
        L->pend_head = (L->pend_head + 1) % t->depth;
        L->pend_count--;
        int si = L->pend[q];
        SK_CHECK(L->pend_bytes[q] == HDR + bytes, SK_E_INTERNAL,
                 "pipeline: self-loop message of %zu bytes, receive of %zu", L->pend_bytes[q],
                 HDR + bytes);
        SK_CU("pipeline recv", cudaStreamWaitEvent(L->r_stream, L->s_ready[si], 0));
        SK_NCCL("group", ncclGroupStart());
        ncclResult_t r1 = ncclSend(L->s_slot[si], HDR + bytes, ncclUint8, 0, L->comm[0], L->r_stream);
        ncclResult_t r2 = ncclRecv(L->r_slot[i], HDR + bytes, ncclUint8, 0, L->comm[0], L->r_stream);
        SK_NCCL("group", ncclGroupEnd());
        SK_NCCL("self send", r1);
        SK_NCCL("self recv", r2);
        SK_CU("pipeline recv", cudaEventRecord(L->s_done[si], L->r_stream));
    } else {
        SK_NCCL("recv", ncclRecv(L->r_slot[i], HDR + bytes, ncclUint8, 0, L->comm[1], L->r_stream));
    }
    SK_CU("pipeline recv", cudaEventRecord(L->r_arrived[i], L->r_stream));
    SK_CU("pipeline recv", cudaStreamWaitEvent(cs, L->r_arrived[i], 0));
    size_t off = HDR;
    for (int j = 0; j < n; j++) {
        size_t nb = sk_tensor_nbytes(ts[j]);
        SK_CU("pipeline recv", cudaMemcpyAsync(ts[j]->data, L->r_slot[i] + off, nb,
                                               cudaMemcpyDeviceToDevice, cs));
        off += nb;
    }
    SK_CU("pipeline recv", cudaMemcpyAsync(L->r_hdr + (size_t)i * HDR, L->r_slot[i], HDR,
                                           cudaMemcpyDeviceToHost, cs));
    SK_CU("pipeline recv", cudaEventRecord(L->r_consumed[i], cs));
    L->r_expect[i] = *expect;
    L->r_check[i] = 1;
    return SK_OK;
}

static sk_status nc_flush(sk_pp_transport *t, int stage)
{
    nc_impl *im = (nc_impl *)t->impl;
    if (im->aborted.load()) return stopped();
    nc_link *out = &im->links[stage], *in = &im->links[(stage - 1 + t->n_stages) % t->n_stages];
    if (!out->self) SK_CU("pipeline flush", cudaStreamSynchronize(out->s_stream));
    for (int i = 0; i < t->depth; i++) SK_TRY(check_slot(t, in, stage, i));
    SK_CU("pipeline flush", cudaStreamSynchronize(im->cs[stage]));
    return SK_OK;
}

static void nc_abort(sk_pp_transport *t)
{
    nc_impl *im = (nc_impl *)t->impl;
    if (im->aborted.exchange(1)) return;
    for (int k = 0; k < t->n_stages; k++)
        for (int r = 0; r < 2; r++)
            if (im->links[k].comm[r]) ncclCommAbort(im->links[k].comm[r]);
}

static void free_link(nc_link *L, int depth, int aborted)
{
    if (L->dev_send >= 0) {
        cudaSetDevice(L->dev_send);
        if (L->s_stream) cudaStreamSynchronize(L->s_stream);
    }
    for (int r = 0; r < 2; r++)
        if (L->comm[r] && !aborted) ncclCommDestroy(L->comm[r]);
    if (L->dev_send >= 0) {
        cudaSetDevice(L->dev_send);
        for (int i = 0; i < depth; i++) {
            if (L->s_slot[i]) cudaFree(L->s_slot[i]);
            if (L->s_ready[i]) cudaEventDestroy(L->s_ready[i]);
            if (L->s_done[i]) cudaEventDestroy(L->s_done[i]);
        }
        if (L->s_stream) cudaStreamDestroy(L->s_stream);
        if (L->s_hdr) cudaFreeHost(L->s_hdr);
    }
    if (L->dev_recv >= 0) {
        cudaSetDevice(L->dev_recv);
        if (L->r_stream) cudaStreamSynchronize(L->r_stream);
        for (int i = 0; i < depth; i++) {
            if (L->r_slot[i]) cudaFree(L->r_slot[i]);
            if (L->r_arrived[i]) cudaEventDestroy(L->r_arrived[i]);
            if (L->r_consumed[i]) cudaEventDestroy(L->r_consumed[i]);
        }
        if (L->r_stream) cudaStreamDestroy(L->r_stream);
        if (L->r_hdr) cudaFreeHost(L->r_hdr);
    }
}

static void nc_destroy(sk_pp_transport *t)
{
    nc_impl *im = (nc_impl *)t->impl;
    if (im) {
        int ab = im->aborted.load();
        for (int k = 0; k < t->n_stages; k++) free_link(&im->links[k], t->depth, ab);
        delete im;
    }
    free(t);
}

static const sk_pp_transport_ops nc_ops = {
    "nccl", nc_bind, nc_send, nc_recv, nc_flush, nc_abort, nc_destroy,
};

static sk_status make_link(sk_pp_transport *t, nc_impl *im, int k)
{
    const int n = t->n_stages;
    nc_link *L = &im->links[k];
    L->dev_send = im->devs[k];
    L->dev_recv = im->devs[(k + 1) % n];
    L->self = n == 1;
    L->slot_bytes = HDR + t->max_bytes;
    int dl[2] = {L->dev_send, L->dev_recv};
    SK_NCCL("init", ncclCommInitAll(L->comm, L->self ? 1 : 2, dl));
    SK_CU("pipeline init", cudaSetDevice(L->dev_send));
    SK_CU("pipeline init", cudaStreamCreateWithFlags(&L->s_stream, cudaStreamNonBlocking));
    SK_CU("pipeline init", cudaHostAlloc((void **)&L->s_hdr, (size_t)t->depth * HDR, cudaHostAllocPortable));
    for (int i = 0; i < t->depth; i++) {
        SK_CU("pipeline init", cudaMalloc((void **)&L->s_slot[i], L->slot_bytes));
        SK_CU("pipeline init", cudaEventCreateWithFlags(&L->s_ready[i], cudaEventDisableTiming));
        SK_CU("pipeline init", cudaEventCreateWithFlags(&L->s_done[i], cudaEventDisableTiming));
    }
    SK_CU("pipeline init", cudaSetDevice(L->dev_recv));
    SK_CU("pipeline init", cudaStreamCreateWithFlags(&L->r_stream, cudaStreamNonBlocking));
    SK_CU("pipeline init", cudaHostAlloc((void **)&L->r_hdr, (size_t)t->depth * HDR, cudaHostAllocPortable));
    for (int i = 0; i < t->depth; i++) {
        SK_CU("pipeline init", cudaMalloc((void **)&L->r_slot[i], L->slot_bytes));
        SK_CU("pipeline init", cudaEventCreateWithFlags(&L->r_arrived[i], cudaEventDisableTiming));
        SK_CU("pipeline init", cudaEventCreateWithFlags(&L->r_consumed[i], cudaEventDisableTiming));
        /* a consumed event that has never been recorded counts as complete */
    }
    return SK_OK;
}

extern "C" int sk_pp_have_nccl(void) { return 1; }

extern "C" sk_status sk_pp_transport_nccl(int n_stages, sk_backend *const *bes, size_t max_bytes,
                                          int depth, sk_pp_transport **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_pp_transport_nccl: NULL argument");
    *out = NULL;
    SK_CHECK(bes && n_stages >= 1 && n_stages <= SK_PP_MAX_STAGES && depth >= 1 &&
                 depth <= MAXD && max_bytes >= 1,
             SK_E_INVALID_ARG, "pipeline NCCL: %d stages, depth %d, %zu bytes", n_stages, depth,
             max_bytes);
    int devs[SK_PP_MAX_STAGES];
    for (int k = 0; k < n_stages; k++) {
        SK_CHECK(bes[k] && bes[k]->name && strcmp(bes[k]->name, "cuda") == 0, SK_E_INVALID_ARG,
                 "pipeline NCCL: stage %d's backend is %s; NCCL needs a CUDA backend per stage",
                 k, bes[k] && bes[k]->name ? bes[k]->name : "missing");
        devs[k] = sk_cuda(bes[k])->device;
        for (int j = 0; j < k; j++)
            SK_CHECK(devs[j] != devs[k], SK_E_INVALID_ARG,
                     "pipeline NCCL: stages %d and %d are both on GPU %d; NCCL needs one GPU per "
                     "stage (several stages on one GPU: the loopback transport, --pp-stages)",
                     j, k, devs[k]);
    }
    /* never NVLink multicast (NVLS): it can take the host's GPUs out of service */
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    int ver = 0;
    ncclGetVersion(&ver);
    sk_pp_transport *t = (sk_pp_transport *)calloc(1, sizeof *t);
    nc_impl *im = new (std::nothrow) nc_impl();
    if (!t || !im) {
        free(t);
        delete im;
        return SK_ERR(SK_E_OOM, "pipeline NCCL: out of host memory");
    }
    im->aborted.store(0);
    t->ops = &nc_ops;
    t->n_stages = n_stages;
    t->max_bytes = max_bytes;
    t->depth = depth;
    t->impl = im;
    for (int k = 0; k < n_stages; k++) {
        im->devs[k] = devs[k];
        im->cs[k] = sk_cuda(bes[k])->stream;
        im->links[k].dev_send = im->links[k].dev_recv = -1;
    }
    int cur = 0;
    cudaGetDevice(&cur);
    for (int k = 0; k < n_stages; k++) {
        sk_status st = make_link(t, im, k);
        if (st != SK_OK) {
            nc_destroy(t);
            cudaSetDevice(cur);
            return st;
        }
    }
    cudaSetDevice(cur);
    SK_LOGI("pipeline: NCCL %d.%d.%d, %d link%s (%s), %d slots of %.1f MB per link end, "
            "NCCL_NVLS_ENABLE=0", ver / 10000, ver / 100 % 100, ver % 100, n_stages,
            n_stages > 1 ? "s" : "", n_stages == 1 ? "self-loop" : "ring", depth,
            (double)(HDR + max_bytes) / 1e6);
    *out = t;
    return SK_OK;
}
#endif
