/* op_cases.h - THE table of op test cases, shared by the CPU tests and the
 * CUDA checker (tests/gpu/check_ops.c).
 *
 * A case names one sk_op_* call with concrete sizes (odd and prime sizes, one
 * past a tile), a dtype and its arguments. sk_op_case_run() builds seeded
 * random inputs on the host, rounds them through the case's dtypes (so every
 * backend sees the very same representable values), uploads them to the given
 * backend, runs the op through the checked sk_op_* entry point and returns
 * the output as f32. Running the same case and seed on two backends and
 * comparing with sk_compare() under sk_op_case_bounds() is the cross-backend
 * check:
 *
 *   for (int i = 0; i < sk_op_case_count(); i++) {
 *       const sk_op_case *c = sk_op_case_get(i);
 *       if (!sk_op_case_runs_on(c, gpu)) continue;
 *       float *ref, *got; size_t nr, ng;
 *       sk_op_case_run(c, cpu, seed, &ref, &nr);   // f32 CPU backend: the oracle
 *       sk_op_case_run(c, gpu, seed, &got, &ng);
 *       sk_op_bounds b = sk_op_case_bounds(c);
 *       sk_compare_result r = sk_compare(got, ref, nr, b.nmse, b.atol, b.rtol);
 *       free(ref); free(got);
 *   }
 */
#ifndef SK_TEST_OP_CASES_H
#define SK_TEST_OP_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/backend.h"

/* Error classes: the bounds depend on (class, dtype). */
typedef enum {
    SK_OPC_EXACT = 0,  /* pure data movement or exact conversion: bit-identical */
    SK_OPC_ELEMENTWISE,/* one rounding per element (axpby, act, rope, gated add)  */
    SK_OPC_NORM,       /* row reductions then elementwise (layer/rms norm, modulate) */
    SK_OPC_MATMUL,     /* long dot products (linear, conv2d)                     */
    SK_OPC_ATTENTION,  /* softmax(q k^T) v                                       */
    SK_OPC_NOISE,      /* counter-based noise: equal up to a rare ulp            */
    SK_OPC_COUNT_
} sk_op_class;

typedef struct {
    const char *name;  /* unique case name, e.g. "linear_bf16_7x13x11"            */
    const char *op;    /* sk_op_* name without prefix: "linear", "attention", ...  */
    sk_op_class cls;
    sk_dtype dtype;    /* activation dtype: activation inputs are rounded through it
                        * and the backend must compute in it (or in f32: oracle)  */
    sk_dtype wdtype;   /* weight dtype (linear/conv/norm weights, embedding table);
                        * for convert: the output dtype                           */
    int64_t d[8];      /* sizes, meaning per op (see op_cases.c)                  */
    int i[4];          /* int args, meaning per op (act, stride, pad, factor, ...) */
    float f[2];        /* float args (eps, scale, a, b)                           */
} sk_op_case;

typedef struct {
    double nmse, atol, rtol; /* arguments of sk_compare */
} sk_op_bounds;

int sk_op_case_count(void);
/* NULL when i is out of range */
const sk_op_case *sk_op_case_get(int i);
/* NULL when no case has that name */
const sk_op_case *sk_op_case_find(const char *name);
sk_op_bounds sk_op_case_bounds(const sk_op_case *c);
/* 1 if c is meaningful on be: be->act_dtype is f32 (the oracle runs every
 * case) or equals c->dtype; convert and noise run everywhere. */
int sk_op_case_runs_on(const sk_op_case *c, const sk_backend *be);
/* Runs c on be with inputs drawn from seed. On success *out is a malloc'd f32
 * array of *n output values (caller frees). On failure *out is NULL and the
 * status/message come from the op (or from input creation). */
sk_status sk_op_case_run(const sk_op_case *c, sk_backend *be, uint32_t seed, float **out,
                         size_t *n);
/* "linear M=7 K=13 N=11 act=gelu_tanh x:bf16 w:bf16 bias" into buf; returns buf */
const char *sk_op_case_describe(const sk_op_case *c, char *buf, size_t cap);
const char *sk_op_class_name(sk_op_class cls);

#endif
