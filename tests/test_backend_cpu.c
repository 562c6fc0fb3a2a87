/* test_backend_cpu.c - the CPU backend's memory functions and op table:
 * alignment, byte counters, transfers with dtype conversion, zero/copy, and
 * that every entry of sk_backend_ops is implemented. */
#include <stddef.h>
#include <stdint.h>

#include "tests/common/test_util.h"
#include "runtime/engine/device.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void) { sk_backend_free_(&be); }
TestSuite(backend_cpu, .init = setup, .fini = teardown);

Test(backend_cpu, identity_and_complete_op_table)
{
    cr_assert_str_eq(be->name, "cpu");
    cr_assert_eq(be->act_dtype, SK_DTYPE_F32);
    /* every slot of the table is a non-NULL function pointer */
    const size_t n = sizeof(sk_backend_ops) / sizeof(void (*)(void));
    cr_assert_eq(n * sizeof(void (*)(void)), sizeof(sk_backend_ops));
    for (size_t i = 0; i < n; i++) {
        /* the optional entries (backend.h): graphs and fusions a backend may leave out */
        const size_t off = i * sizeof(void (*)(void));
        if (off >= offsetof(sk_backend_ops, graph_begin) &&
            off <= offsetof(sk_backend_ops, rmsnorm_rope3d))
            continue;
        void (*fn)(void);
        memcpy(&fn, (const char *)be->ops + i * sizeof fn, sizeof fn);
        cr_assert_not_null(fn, "sk_backend_ops slot %zu is NULL on the cpu backend", i);
    }
    sk_backend *byname = NULL;
    TT_OK(sk_backend_create("cpu", SK_DTYPE_BF16, &byname)); /* act dtype is always f32 on cpu */
    cr_assert_eq(byname->act_dtype, SK_DTYPE_F32);
    sk_backend_free_(&byname);
    cr_assert_null(byname);
    sk_backend_free_(&byname); /* NULL is fine */
}

Test(backend_cpu, alloc_alignment_and_counters)
{
    void *p[5];
    const size_t sz[5] = {1, 63, 64, 1000, 1 << 20};
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        TT_OK(sk_backend_alloc(be, sz[i], &p[i]));
        cr_assert_eq((uintptr_t)p[i] % 64, 0, "allocation %d not 64-byte aligned", i);
        memset(p[i], 0xab, sz[i]); /* the whole size is writable (ASan checks) */
        total += sz[i];
    }
    cr_assert_eq(be->n_allocs, 5);
    cr_assert_eq(be->bytes_live, total);
    cr_assert_eq(be->bytes_peak, total);
    sk_backend_free(be, p[4]);
    cr_assert_eq(be->bytes_live, total - sz[4]);
    cr_assert_eq(be->bytes_peak, total);
    for (int i = 0; i < 4; i++) sk_backend_free(be, p[i]);
    cr_assert_eq(be->bytes_live, 0);
    sk_backend_free(be, NULL);
    cr_assert_eq(be->bytes_live, 0);
}

Test(backend_cpu, transfers_zero_copy)
{
    const float v[6] = {1.5f, -2, 3.25f, 1e-3f, 65504, -0.0f};
    sk_tensor a = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), v);
    sk_tensor h = tt_new(be, SK_DTYPE_F16, 2, TT_SHAPE(2, 3), v);
    float *ga = tt_get(&a), *gh = tt_get(&h);
    cr_assert(memcmp(ga, v, sizeof v) == 0);
    for (int i = 0; i < 6; i++) cr_assert_eq(gh[i], sk_f16_to_f32(sk_f32_to_f16(v[i])));
    sk_tensor b = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), NULL);
    TT_OK(sk_tensor_copy(&b, &a));
    float *gb = tt_get(&b);
    cr_assert(memcmp(gb, v, sizeof v) == 0);
    TT_OK(sk_tensor_zero(&b));
    free(gb);
    gb = tt_get(&b);
    for (int i = 0; i < 6; i++) cr_assert_eq(gb[i], 0.0f);
    TT_FAILS(sk_tensor_copy(&b, &h), SK_E_SHAPE, "tensor: copy");
    TT_OK(sk_backend_sync(be));
    free(ga), free(gh), free(gb);
    sk_tensor_free(&a), sk_tensor_free(&h), sk_tensor_free(&b);
    cr_assert_eq(be->bytes_live, 0);
}
