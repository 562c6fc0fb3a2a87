/* umt5_internal.h - the loaded umT5 model, shared by umt5_load.c (binding)
 * and umt5.c (forward). Not a public header. */
#ifndef SK_TEXT_UMT5_INTERNAL_H
#define SK_TEXT_UMT5_INTERNAL_H

#include "runtime/core/arena.h"
#include "runtime/io/safetensors.h"
#include "umt5.h"

typedef struct {
    sk_tensor norm1, q, k, v, o, norm2, gate, fc1, fc2; /* on the backend */
    sk_tensor pos_t; /* f32 [num_heads, num_buckets]: the position table, transposed */
} sk_umt5_layer;

struct sk_umt5 {
    sk_backend *be;
    sk_umt5_config cfg;
    sk_st_file **files;    /* kept mapped: CPU weights may be views into them */
    int n_files;           /* 1, or the shards of a sharded checkpoint */
    const sk_st_tensor **all; /* every tensor of every file */
    int n_all;
    sk_tensor embed;       /* [vocab, dim] */
    sk_tensor norm;        /* [dim] */
    sk_umt5_layer *layers; /* [num_layers] */
    char describe[320];
    /* forward scratch, sized for scratch_rows tokens at the first encode */
    sk_arena arena;
    int64_t scratch_rows;
    int32_t *bucket_host;  /* [rows, rows], for bucket_len tokens */
    int64_t bucket_len;
};

#endif
