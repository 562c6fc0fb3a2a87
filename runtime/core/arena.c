/* arena.c - see arena.h. */
#include "runtime/core/arena.h"

#include <string.h>

sk_status sk_arena_init(sk_arena *a, sk_backend *be, size_t cap)
{
    memset(a, 0, sizeof *a);
    void *p = NULL;
    SK_TRY(sk_backend_alloc(be, cap, &p));
    a->be = be;
    a->base = p;
    a->cap = cap;
    return SK_OK;
}

void sk_arena_free(sk_arena *a)
{
    if (!a) return;
    if (a->base) sk_backend_free(a->be, a->base);
    memset(a, 0, sizeof *a);
}

sk_status sk_arena_tensor(sk_arena *a, sk_dtype dt, int ndim, const int64_t *shape, sk_tensor *out)
{
    sk_tensor t = sk_tensor_desc(dt, ndim, shape);
    size_t bytes = sk_tensor_nbytes(&t);
    size_t off = (a->used + SK_ARENA_ALIGN - 1) / SK_ARENA_ALIGN * SK_ARENA_ALIGN;
    char s[96];
    SK_CHECK(off <= a->cap && bytes <= a->cap - off, SK_E_OOM,
             "arena: scratch arena of %zu bytes is full (%zu used, %zu more needed for %s %s); "
             "this is a sizing bug in sinkstream",
             a->cap, a->used, bytes, sk_dtype_name(dt), sk_shape_str(&t, s, sizeof s));
    t.data = a->base + off;
    t.be = a->be;
    t.owns = 0;
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    *out = t;
    return SK_OK;
}

size_t sk_arena_mark(const sk_arena *a) { return a->used; }
void sk_arena_reset_to(sk_arena *a, size_t mark) { a->used = mark; }
void sk_arena_reset(sk_arena *a) { a->used = 0; }
