/* cuda_graph.cu - CUDA graphs for the op table, and the counters / event
 * timers that benchmarks read (sk_cuda.h).
 *
 * Capture is thread-local stream capture on the backend's stream: every op
 * issued between graph_begin and graph_end becomes a node instead of running.
 * Executable graphs are cached by a caller-given key (the DiT forward derives
 * it from its buffer addresses, shapes, RoPE offset and KV ranges). A new
 * recording replaces the least recently used entry of its class (keys equal in
 * their first 16 bytes: the same op sequence), and cudaGraphExecUpdate patches
 * that graph's parameters in place (much cheaper than instantiating); without
 * one it takes a free or the least recently used entry. An entry captured before the scratch
 * buffer was reallocated is stale and never launched.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_internal.h"
#include "sk_cuda.h"

#define GRAPH_SLOTS 8
#define GRAPH_KEY_MAX 512
#define GRAPH_CLASS_BYTES 16 /* keys equal in these record the same op sequence (backend.h) */

typedef struct {
    int valid;
    size_t key_len;
    unsigned char key[GRAPH_KEY_MAX];
    cudaGraphExec_t exec;
    uint64_t last_use;
    unsigned scratch_gen;
} graph_slot;

typedef struct {
    graph_slot slot[GRAPH_SLOTS];
    uint64_t clock;
    double t_begin;
    sk_cuda_graph_counters n;
} graph_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static graph_state *state(sk_cuda_ctx *c)
{
    if (!c->graphs) c->graphs = calloc(1, sizeof(graph_state));
    return (graph_state *)c->graphs;
}

static graph_slot *find(graph_state *g, unsigned gen, const void *key, size_t len)
{
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        graph_slot *s = &g->slot[i];
        if (s->valid && s->key_len == len && s->scratch_gen == gen && !memcmp(s->key, key, len))
            return s;
    }
    return NULL;
}

extern "C" sk_status sk_cuda_graph_begin(sk_backend *be)
{
    sk_cuda_ctx *c = sk_cuda(be);
    SK_CHECK(!c->capturing, SK_E_INTERNAL, "cuda graph: a recording is already in progress");
    graph_state *g = state(c);
    SK_CHECK(g, SK_E_OOM, "cuda graph: out of host memory");
    g->t_begin = now_s();
    SK_CU("graph begin", cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = 1;
    return SK_OK;
}

extern "C" sk_status sk_cuda_graph_end(sk_backend *be, const void *key, size_t len, int discard)
{
    sk_cuda_ctx *c = sk_cuda(be);
    graph_state *g = (graph_state *)c->graphs;
    SK_CHECK(c->capturing && g, SK_E_INTERNAL, "cuda graph: end without a recording");
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    c->capturing = 0;
    if (discard || e != cudaSuccess || !graph) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        if (discard) return SK_OK;
        return SK_ERR(SK_E_CUDA, "cuda graph: recording failed: %s (%s)", cudaGetErrorString(e),
                      cudaGetErrorName(e));
    }
    if (len > GRAPH_KEY_MAX) {
        cudaGraphDestroy(graph);
        return SK_ERR(SK_E_INTERNAL, "cuda graph: key of %zu bytes (at most %d)", len,
                      GRAPH_KEY_MAX);
    }
    /* same key (a stale entry), else the least recently used entry of the same class
     * (first GRAPH_CLASS_BYTES bytes: same op sequence, so cudaGraphExecUpdate patches
     * it instead of a fresh instantiation), else a free slot, else the least recently
     * used */
    graph_slot *s = NULL;
    for (int i = 0; i < GRAPH_SLOTS && !s; i++)
        if (g->slot[i].valid && g->slot[i].key_len == len && !memcmp(g->slot[i].key, key, len))
            s = &g->slot[i];
    const size_t cls = len < GRAPH_CLASS_BYTES ? len : GRAPH_CLASS_BYTES;
    for (int i = 0; i < GRAPH_SLOTS && !s; i++) {
        graph_slot *t = &g->slot[i];
        if (t->valid && t->exec && t->key_len == len && !memcmp(t->key, key, cls))
            if (!s || t->last_use < s->last_use) s = t;
    }
    for (int i = 0; i < GRAPH_SLOTS && !s; i++)
        if (!g->slot[i].valid) s = &g->slot[i];
    if (!s) {
        s = &g->slot[0];
        for (int i = 1; i < GRAPH_SLOTS; i++)
            if (g->slot[i].last_use < s->last_use) s = &g->slot[i];
    }
    sk_status st = SK_OK;
    int ok = 0;
    if (s->exec) {
        cudaGraphExecUpdateResultInfo info;
        memset(&info, 0, sizeof info);
        if (cudaGraphExecUpdate(s->exec, graph, &info) == cudaSuccess) {
            ok = 1;
            g->n.updates++;
        } else {
            cudaGetLastError();
            cudaGraphExecDestroy(s->exec);
            s->exec = NULL;
        }
    }
    if (!ok) {
        e = cudaGraphInstantiate(&s->exec, graph, 0);
        if (e != cudaSuccess) {
            cudaGetLastError();
            s->exec = NULL;
            st = SK_ERR(SK_E_CUDA, "cuda graph: instantiate failed: %s", cudaGetErrorString(e));
        } else {
            g->n.instantiations++;
        }
    }
    cudaGraphDestroy(graph);
    s->valid = st == SK_OK;
    if (st == SK_OK) {
        memcpy(s->key, key, len);
        s->key_len = len;
        s->scratch_gen = c->scratch_gen;
        s->last_use = ++g->clock;
        g->n.captures++;
        g->n.capture_ms += 1e3 * (now_s() - g->t_begin);
    }
    return st;
}

extern "C" int sk_cuda_graph_find(sk_backend *be, const void *key, size_t len)
{
    sk_cuda_ctx *c = sk_cuda(be);
    graph_state *g = (graph_state *)c->graphs;
    return g && len <= GRAPH_KEY_MAX && find(g, c->scratch_gen, key, len) != NULL;
}

extern "C" sk_status sk_cuda_graph_launch(sk_backend *be, const void *key, size_t len)
{
    sk_cuda_ctx *c = sk_cuda(be);
    graph_state *g = (graph_state *)c->graphs;
    graph_slot *s = g && len <= GRAPH_KEY_MAX ? find(g, c->scratch_gen, key, len) : NULL;
    SK_CHECK(s, SK_E_INTERNAL, "cuda graph: launch of a graph that is not held");
    SK_CHECK(!c->capturing, SK_E_INTERNAL, "cuda graph: launch while recording");
    SK_CU("graph launch", cudaGraphLaunch(s->exec, c->stream));
    s->last_use = ++g->clock;
    g->n.launches++;
    return SK_OK;
}

extern "C" void sk_cuda_graph_destroy(sk_cuda_ctx *c)
{
    graph_state *g = (graph_state *)c->graphs;
    if (!g) return;
    for (int i = 0; i < GRAPH_SLOTS; i++)
        if (g->slot[i].exec) cudaGraphExecDestroy(g->slot[i].exec);
    free(g);
    c->graphs = NULL;
}

/* ---- sk_cuda.h: counters, memory, event timers */

static int is_cuda(sk_backend *be) { return be && sk_cuda_backend_stream(be) != NULL; }

extern "C" sk_status sk_cuda_get_stats(sk_backend *be, sk_cuda_stats *out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_cuda_get_stats: NULL output");
    memset(out, 0, sizeof *out);
    SK_CHECK(is_cuda(be), SK_E_UNSUPPORTED, "not a CUDA backend");
    sk_cuda_ctx *c = sk_cuda(be);
    out->device_mallocs = c->n_mallocs;
    out->fixed_bytes = c->lt_ws_bytes + c->scratch_bytes;
    if (c->graphs) out->graphs = ((graph_state *)c->graphs)->n;
    SK_CU("stats", cudaMemGetInfo(&out->mem_free, &out->mem_total));
    cudaDeviceProp prop;
    SK_CU("stats", cudaGetDeviceProperties(&prop, c->device));
    snprintf(out->device_name, sizeof out->device_name, "%s", prop.name);
    out->sm_count = prop.multiProcessorCount;
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    out->driver_version = drv;
    out->runtime_version = rt;
    return SK_OK;
}

struct sk_cuda_timer {
    sk_backend *be;
    cudaEvent_t *ev;
    int cap, n;
};

extern "C" sk_status sk_cuda_timer_create(sk_backend *be, int cap, sk_cuda_timer **out)
{
    SK_CHECK(out && cap > 0, SK_E_INVALID_ARG, "sk_cuda_timer_create: bad arguments");
    *out = NULL;
    SK_CHECK(is_cuda(be), SK_E_UNSUPPORTED, "not a CUDA backend");
    sk_cuda_timer *t = (sk_cuda_timer *)calloc(1, sizeof *t);
    cudaEvent_t *ev = (cudaEvent_t *)calloc((size_t)cap, sizeof(cudaEvent_t));
    if (!t || !ev) {
        free(t);
        free(ev);
        return SK_ERR(SK_E_OOM, "cuda timer: out of host memory");
    }
    t->be = be;
    t->ev = ev;
    for (int i = 0; i < cap; i++) {
        cudaError_t e = cudaEventCreate(&t->ev[i]);
        if (e != cudaSuccess) {
            t->cap = i;
            sk_cuda_timer_free(&t);
            return SK_ERR(SK_E_CUDA, "cuda timer: cudaEventCreate: %s", cudaGetErrorString(e));
        }
    }
    t->cap = cap;
    *out = t;
    return SK_OK;
}

extern "C" void sk_cuda_timer_free(sk_cuda_timer **pt)
{
    if (!pt || !*pt) return;
    sk_cuda_timer *t = *pt;
    for (int i = 0; i < t->cap; i++) cudaEventDestroy(t->ev[i]);
    free(t->ev);
    free(t);
    *pt = NULL;
}

extern "C" int sk_cuda_timer_mark(sk_cuda_timer *t)
{
    if (!t || t->n >= t->cap) return -1;
    if (cudaEventRecord(t->ev[t->n], sk_cuda(t->be)->stream) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return t->n++;
}

extern "C" int sk_cuda_timer_count(const sk_cuda_timer *t) { return t ? t->n : 0; }

extern "C" sk_status sk_cuda_timer_elapsed(sk_cuda_timer *t, int a, int b, float *ms)
{
    SK_CHECK(t && ms && a >= 0 && b >= 0 && a < t->n && b < t->n, SK_E_INVALID_ARG,
             "cuda timer: marks %d..%d of %d", a, b, t ? t->n : 0);
    SK_CU("timer", cudaEventSynchronize(t->ev[b]));
    SK_CU("timer", cudaEventElapsedTime(ms, t->ev[a], t->ev[b]));
    return SK_OK;
}

extern "C" void sk_cuda_timer_reset(sk_cuda_timer *t)
{
    if (t) t->n = 0;
}

/* a CUDA backend, also while a tool (bench's profiler) has wrapped its op table */
static int is_cuda_any(sk_backend *be)
{
    return be && be->ctx && be->name && strcmp(be->name, "cuda") == 0;
}

extern "C" int sk_cuda_timer_mark_on(sk_cuda_timer *t, sk_backend *be)
{
    if (!t || t->n >= t->cap || !is_cuda_any(be)) return -1;
    if (cudaEventRecord(t->ev[t->n], sk_cuda(be)->stream) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return t->n++;
}

/* ---- sk_cuda.h: events and copies between two backends of one device */

struct sk_cuda_event {
    cudaEvent_t ev;
};

extern "C" sk_status sk_cuda_event_create(sk_cuda_event **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_cuda_event_create: NULL output");
    *out = NULL;
    sk_cuda_event *e = (sk_cuda_event *)calloc(1, sizeof *e);
    SK_CHECK(e, SK_E_OOM, "cuda event: out of host memory");
    cudaError_t ce = cudaEventCreateWithFlags(&e->ev, cudaEventDisableTiming);
    if (ce != cudaSuccess) {
        free(e);
        return SK_ERR(SK_E_CUDA, "cuda event: cudaEventCreate: %s", cudaGetErrorString(ce));
    }
    *out = e;
    return SK_OK;
}

extern "C" void sk_cuda_event_free(sk_cuda_event **pe)
{
    if (!pe || !*pe) return;
    cudaEventDestroy((*pe)->ev);
    free(*pe);
    *pe = NULL;
}

extern "C" sk_status sk_cuda_event_record(sk_cuda_event *e, sk_backend *be)
{
    SK_CHECK(e && is_cuda_any(be), SK_E_INVALID_ARG, "cuda event record: not a CUDA backend");
    SK_CU("event record", cudaEventRecord(e->ev, sk_cuda(be)->stream));
    return SK_OK;
}

extern "C" sk_status sk_cuda_event_wait(sk_backend *be, sk_cuda_event *e)
{
    SK_CHECK(e && is_cuda_any(be), SK_E_INVALID_ARG, "cuda event wait: not a CUDA backend");
    SK_CU("event wait", cudaStreamWaitEvent(sk_cuda(be)->stream, e->ev, 0));
    return SK_OK;
}

extern "C" sk_status sk_cuda_event_sync(sk_cuda_event *e)
{
    SK_CHECK(e, SK_E_INVALID_ARG, "cuda event sync: NULL event");
    SK_CU("event sync", cudaEventSynchronize(e->ev));
    return SK_OK;
}

extern "C" sk_status sk_cuda_copy_async(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    SK_CHECK(is_cuda_any(be), SK_E_INVALID_ARG, "cuda copy: not a CUDA backend");
    SK_CHECK(!sk_cuda(be)->capturing, SK_E_INTERNAL, "cuda copy_async while a graph is being recorded");
    SK_CU("copy_async", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, sk_cuda(be)->stream));
    return SK_OK;
}

extern "C" sk_status sk_cuda_download_async(sk_backend *be, void *host_dst, const void *src,
                                            size_t bytes)
{
    SK_CHECK(is_cuda_any(be), SK_E_INVALID_ARG, "cuda download: not a CUDA backend");
    SK_CHECK(!sk_cuda(be)->capturing, SK_E_INTERNAL, "cuda download while a graph is being recorded");
    SK_CU("download_async",
          cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, sk_cuda(be)->stream));
    return SK_OK;
}

extern "C" sk_status sk_cuda_host_alloc(size_t bytes, void **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_cuda_host_alloc: NULL output");
    *out = NULL;
    cudaError_t ce = cudaMallocHost(out, bytes ? bytes : 1);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        *out = NULL;
        return SK_ERR(SK_E_OOM, "cuda: %zu bytes of page-locked host memory: %s", bytes,
                      cudaGetErrorString(ce));
    }
    return SK_OK;
}

extern "C" void sk_cuda_host_free(void *p)
{
    if (p) cudaFreeHost(p);
}

extern "C" sk_status sk_cuda_timer_elapsed2(sk_cuda_timer *ta, int a, sk_cuda_timer *tb, int b,
                                            float *ms)
{
    SK_CHECK(ta && tb && ms && a >= 0 && b >= 0 && a < ta->n && b < tb->n, SK_E_INVALID_ARG,
             "cuda timer: marks %d of %d, %d of %d", a, ta ? ta->n : 0, b, tb ? tb->n : 0);
    SK_CU("timer", cudaEventSynchronize(tb->ev[b]));
    SK_CU("timer", cudaEventElapsedTime(ms, ta->ev[a], tb->ev[b]));
    return SK_OK;
}
