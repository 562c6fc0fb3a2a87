/* cuda_cudnn_graph.h - the pieces of cuDNN's backend (graph) API that the
 * fused-attention files share (cuda_attention_cudnn.cu: bf16 SDPA;
 * cuda_attention_fp8.cu: FP8 SDPA), so each of them only lists its graph:
 * the SDPA tensors' layout over our [tokens, NH, HD] rows, rank-4 tensor
 * descriptors, pointwise / reduction / matmul operations (f32 math), the
 * search for the first engine config that finalizes into an execution plan,
 * one execution, and the probe of a per-shape plan cache.
 * Internal to cuda/ (C++ linkage), only in builds with cuDNN (SK_HAVE_CUDNN).
 * Named cuda_cudnn_graph.h, not cudnn_graph.h: cuDNN ships a header of that
 * name (included by cudnn.h).
 */
#ifndef SK_CUDA_CUDNN_GRAPH_H
#define SK_CUDA_CUDNN_GRAPH_H

#ifdef SK_HAVE_CUDNN
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cudnn.h>

typedef cudnnBackendDescriptor_t bdesc;

/* one cuDNN call that failed: message into `err` (a char[errn] in scope),
 * then `goto fail` */
#define SK_DNN(call)                                                                       \
    do {                                                                                   \
        cudnnStatus_t ds_ = (call);                                                        \
        if (ds_ != CUDNN_STATUS_SUCCESS) {                                                 \
            snprintf(err, errn, "%s in %s", cudnnGetErrorString(ds_), #call);              \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

/* The SDPA graphs' rank-4 tensors (batch 1), dims *d and strides *s: Q and O
 * [1, NH, Nq, HD] over our [Nq, NH, HD] rows ("BSHD"); K^T [1, NH, HD, Nk]
 * and V [1, NH, Nk, HD] over [Nk, NH, HD] rows, read in place; the scores
 * S [1, NH, Nq, Nk] and the per-row stats [1, NH, Nq, 1] packed; `one` is a
 * scalar's dims and strides. */
typedef struct {
    int64_t qd[4], qs[4], kd[4], ks[4], vd[4], vs[4], sd[4], ss[4], rd[4], rs[4], one[4];
} sk_dnn_sdpa_dims;
sk_dnn_sdpa_dims sk_dnn_sdpa_layout(int64_t Nq, int64_t Nk, int64_t NH, int64_t HD);

/* tensor descriptor of rank 4 (dims/strides); `virt`: virtual (inside the
 * graph only); `by_value`: a host scalar read at execute time (4-byte
 * alignment, else 16) */
cudnnStatus_t sk_dnn_tensor(bdesc *out, int64_t uid, cudnnDataType_t dt, const int64_t *dim,
                            const int64_t *str, int virt, int by_value);
/* y = mode(x[, b]) in f32 math; b may be NULL (unary modes) */
cudnnStatus_t sk_dnn_pointwise(bdesc *op, cudnnPointwiseMode_t mode, bdesc x, bdesc b, bdesc y);
/* y = mode-reduction of x over the dims where y has extent 1 (f32) */
cudnnStatus_t sk_dnn_reduction(bdesc *op, cudnnReduceTensorOp_t mode, bdesc x, bdesc y);
/* c = a b (f32 accumulation) */
cudnnStatus_t sk_dnn_matmul(bdesc *op, bdesc a, bdesc b, bdesc c);

/* Finalizes the operation graph of ops[0..nops) on handle h, asks the
 * heuristics (mode A) for engine configs and takes the first one that
 * finalizes into an execution plan, from config 0 on or, when `first_env`
 * names a set environment variable, from the config it gives (A/B runs).
 * Only while *plan_out is NULL: the plan goes to *plan_out, its workspace
 * bytes to *ws_out; *picked (the config taken, -1 if none was taken here)
 * and *offered (how many the heuristics gave) are for the caller's log.
 * 0 on success; -1 with the reason in err[errn]. */
int sk_dnn_first_plan(cudnnHandle_t h, bdesc *ops, int nops, const char *first_env, bdesc *plan_out,
                      int64_t *ws_out, int64_t *picked, int64_t *offered, char *err, size_t errn);

/* runs `plan` on h's stream with the n (uid, pointer) pairs and the workspace */
cudnnStatus_t sk_dnn_execute(cudnnHandle_t h, bdesc plan, int64_t n, int64_t *uids, void **ptrs,
                             void *ws);

/* destroys the n descriptors of d that are not NULL, in order */
void sk_dnn_destroy(bdesc *d, int n);

/* A per-shape plan cache of n slots P (with `valid`, 0 = unused, and `plan`),
 * probed from the home slot hsh on: the slot that `same` accepts (valid != 0
 * then), else the first unused one (NULL instead when lookup_only). A full
 * table gives its home slot back emptied (plan destroyed, zeroed) and bumps
 * *gen: recorded graphs that ran that plan go stale. */
template <class P, class Same>
static inline P *sk_dnn_plan_slot(P *plans, int n, unsigned hsh, int lookup_only, unsigned *gen,
                                  Same same)
{
    P *p = NULL;
    for (int i = 0; i < n; i++) {
        P *c = &plans[(hsh + i) % n];
        if (!c->valid) { p = c; break; }
        if (same(c)) return c;
    }
    if (lookup_only) return NULL;
    if (!p) { /* table full: reuse the home slot; graphs that ran its kernel go stale */
        p = &plans[hsh];
        if (p->plan) cudnnBackendDestroyDescriptor((bdesc)p->plan);
        (*gen)++;
        memset(p, 0, sizeof *p);
    }
    return p;
}

#endif /* SK_HAVE_CUDNN */
#endif /* SK_CUDA_CUDNN_GRAPH_H */
