/* cuda_cudnn_graph.cu - cuDNN backend-API helpers shared by the fused
 * attention files (see cuda_cudnn_graph.h). Empty without cuDNN. */
#include "cuda_cudnn_graph.h"

#ifdef SK_HAVE_CUDNN
#include <stdlib.h>

sk_dnn_sdpa_dims sk_dnn_sdpa_layout(int64_t Nq, int64_t Nk, int64_t NH, int64_t HD)
{
    const sk_dnn_sdpa_dims L = {
        {1, NH, Nq, HD}, {Nq * NH * HD, HD, NH * HD, 1},
        {1, NH, HD, Nk}, {Nk * NH * HD, HD, 1, NH * HD},
        {1, NH, Nk, HD}, {Nk * NH * HD, HD, NH * HD, 1},
        {1, NH, Nq, Nk}, {NH * Nq * Nk, Nq * Nk, Nk, 1},
        {1, NH, Nq, 1}, {NH * Nq, Nq, 1, 1},
        {1, 1, 1, 1},
    };
    return L;
}

/* tensor descriptor: dims/strides of rank 4 */
cudnnStatus_t sk_dnn_tensor(bdesc *out, int64_t uid, cudnnDataType_t dt, const int64_t *dim,
                            const int64_t *str, int virt, int by_value)
{
    bdesc t = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    const int64_t align = by_value ? 4 : 16;
    const bool bv = by_value != 0, vv = virt != 0;
    if ((s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &vv)) ||
        (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv)) ||
        (s = cudnnBackendFinalize(t))) {
        cudnnBackendDestroyDescriptor(t);
        return s;
    }
    *out = t;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t sk_dnn_pointwise(bdesc *op, cudnnPointwiseMode_t mode, bdesc x, bdesc b, bdesc y)
{
    bdesc pw = NULL, o = NULL;
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw);
    if (s) return s;
    if ((s = cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)) ||
        (s = cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec)) ||
        (s = cudnnBackendFinalize(pw)) ||
        (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &o)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        (b && (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b))) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_POINTWISE_YDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)) ||
        (s = cudnnBackendFinalize(o))) {
        if (o) cudnnBackendDestroyDescriptor(o);
        cudnnBackendDestroyDescriptor(pw);
        return s;
    }
    cudnnBackendDestroyDescriptor(pw);
    *op = o;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t sk_dnn_reduction(bdesc *op, cudnnReduceTensorOp_t mode, bdesc x, bdesc y)
{
    bdesc rd = NULL, o = NULL;
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, &rd);
    if (s) return s;
    if ((s = cudnnBackendSetAttribute(rd, CUDNN_ATTR_REDUCTION_OPERATOR,
                                      CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode)) ||
        (s = cudnnBackendSetAttribute(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec)) ||
        (s = cudnnBackendFinalize(rd)) ||
        (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, &o)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_REDUCTION_XDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_REDUCTION_YDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_REDUCTION_DESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd)) ||
        (s = cudnnBackendFinalize(o))) {
        if (o) cudnnBackendDestroyDescriptor(o);
        cudnnBackendDestroyDescriptor(rd);
        return s;
    }
    cudnnBackendDestroyDescriptor(rd);
    *op = o;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t sk_dnn_matmul(bdesc *op, bdesc a, bdesc b, bdesc c)
{
    bdesc mm = NULL, o = NULL;
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_MATMUL_DESCRIPTOR, &mm);
    if (s) return s;
    if ((s = cudnnBackendSetAttribute(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec)) ||
        (s = cudnnBackendFinalize(mm)) ||
        (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, &o)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_MATMUL_ADESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_MATMUL_BDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_MATMUL_CDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c)) ||
        (s = cudnnBackendSetAttribute(o, CUDNN_ATTR_OPERATION_MATMUL_DESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm)) ||
        (s = cudnnBackendFinalize(o))) {
        if (o) cudnnBackendDestroyDescriptor(o);
        cudnnBackendDestroyDescriptor(mm);
        return s;
    }
    cudnnBackendDestroyDescriptor(mm);
    *op = o;
    return CUDNN_STATUS_SUCCESS;
}

int sk_dnn_first_plan(cudnnHandle_t h, bdesc *ops, int nops, const char *first_env, bdesc *plan_out,
                      int64_t *ws_out, int64_t *picked, int64_t *offered, char *err, size_t errn)
{
    bdesc graph = NULL, heur = NULL, *cfgs = NULL;
    int64_t ncfg = 0;
    *picked = -1;
    *offered = 0;
    SK_DNN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
    SK_DNN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
    SK_DNN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                    nops, ops));
    SK_DNN(cudnnBackendFinalize(graph));

    {
        SK_DNN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
        SK_DNN(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
        const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
        SK_DNN(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
        SK_DNN(cudnnBackendFinalize(heur));
        SK_DNN(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &ncfg, NULL));
        if (ncfg <= 0) {
            snprintf(err, errn, "heuristics offered no engine");
            goto fail;
        }
        cfgs = (bdesc *)calloc((size_t)ncfg, sizeof *cfgs);
        if (!cfgs) {
            snprintf(err, errn, "out of host memory");
            goto fail;
        }
        for (int64_t i = 0; i < ncfg; i++)
            SK_DNN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]));
        int64_t got = 0;
        SK_DNN(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, ncfg, &got, cfgs));
        *offered = got;
        const char *pick_env = first_env ? getenv(first_env) : NULL; /* A/B: skip to config N */
        int64_t first = pick_env ? atoll(pick_env) : 0;
        if (first < 0) first = 0; /* review fix: a negative value indexed cfgs[-1] */
        cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
        for (int64_t i = first; i < got && !*plan_out; i++) {
            bdesc plan = NULL;
            if ((last = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan)))
                continue;
            if ((last = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                                 CUDNN_TYPE_HANDLE, 1, &h)) ||
                (last = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i])) ||
                (last = cudnnBackendFinalize(plan))) {
                cudnnBackendDestroyDescriptor(plan);
                continue;
            }
            int64_t ws = 0, cnt = 0;
            if ((last = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                 CUDNN_TYPE_INT64, 1, &cnt, &ws))) {
                cudnnBackendDestroyDescriptor(plan);
                continue;
            }
            *plan_out = plan;
            *ws_out = ws;
            *picked = i;
        }
        if (!*plan_out) {
            snprintf(err, errn, "no engine config of %lld finalized (last: %s)", (long long)got,
                     cudnnGetErrorString(last));
            goto fail;
        }
    }
    for (int64_t i = 0; i < ncfg; i++)
        if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
    free(cfgs);
    cudnnBackendDestroyDescriptor(heur);
    cudnnBackendDestroyDescriptor(graph);
    return 0;
fail:
    if (cfgs) {
        for (int64_t i = 0; i < ncfg; i++)
            if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
        free(cfgs);
    }
    if (heur) cudnnBackendDestroyDescriptor(heur);
    if (graph) cudnnBackendDestroyDescriptor(graph);
    return -1;
}

cudnnStatus_t sk_dnn_execute(cudnnHandle_t h, bdesc plan, int64_t n, int64_t *uids, void **ptrs,
                             void *ws)
{
    bdesc vp = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (!s) s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (!s) s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (!s) s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (!s) s = cudnnBackendFinalize(vp);
    if (!s) s = cudnnBackendExecute(h, plan, vp);
    if (vp) cudnnBackendDestroyDescriptor(vp);
    return s;
}

void sk_dnn_destroy(bdesc *d, int n)
{
    for (int i = 0; i < n; i++)
        if (d[i]) cudnnBackendDestroyDescriptor(d[i]);
}

#endif /* SK_HAVE_CUDNN */
