/* names.c - the DiT tensor-name table (see names.h). */
#include "dit/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_global[SK_DW_COUNT_] = {
    "patch_embedding.weight", "patch_embedding.bias",
    "text_embedding.0.weight", "text_embedding.0.bias",
    "text_embedding.2.weight", "text_embedding.2.bias",
    "time_embedding.0.weight", "time_embedding.0.bias",
    "time_embedding.2.weight", "time_embedding.2.bias",
    "time_projection.1.weight", "time_projection.1.bias",
    "head.modulation", "head.head.weight", "head.head.bias",
};

static const char *const k_block[SK_DB_COUNT_] = {
    "modulation",
    "self_attn.q.weight", "self_attn.q.bias", "self_attn.k.weight", "self_attn.k.bias",
    "self_attn.v.weight", "self_attn.v.bias", "self_attn.o.weight", "self_attn.o.bias",
    "self_attn.norm_q.weight", "self_attn.norm_k.weight",
    "norm3.weight", "norm3.bias",
    "cross_attn.q.weight", "cross_attn.q.bias", "cross_attn.k.weight", "cross_attn.k.bias",
    "cross_attn.v.weight", "cross_attn.v.bias", "cross_attn.o.weight", "cross_attn.o.bias",
    "cross_attn.norm_q.weight", "cross_attn.norm_k.weight",
    "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
};

const char *sk_dit_global_name(sk_dit_global_id id) { return k_global[id]; }
const char *sk_dit_block_suffix(sk_dit_block_id id) { return k_block[id]; }

int sk_dit_global_is_matrix(sk_dit_global_id id)
{
    switch (id) {
    case SK_DW_PATCH_W: case SK_DW_TEXT0_W: case SK_DW_TEXT2_W: case SK_DW_TIME0_W:
    case SK_DW_TIME2_W: case SK_DW_TPROJ_W: case SK_DW_HEAD_W: return 1;
    default: return 0;
    }
}

int sk_dit_block_is_matrix(sk_dit_block_id id)
{
    switch (id) {
    case SK_DB_SA_Q_W: case SK_DB_SA_K_W: case SK_DB_SA_V_W: case SK_DB_SA_O_W:
    case SK_DB_CA_Q_W: case SK_DB_CA_K_W: case SK_DB_CA_V_W: case SK_DB_CA_O_W:
    case SK_DB_FFN0_W: case SK_DB_FFN2_W: return 1;
    default: return 0;
    }
}

static int set(int64_t s[6], int n, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e)
{
    s[0] = a; s[1] = b; s[2] = c; s[3] = d; s[4] = e; s[5] = 0;
    return n;
}

int sk_dit_global_shape(const sk_dit_config *c, sk_dit_global_id id, int64_t s[6])
{
    const int64_t D = c->dim;
    switch (id) {
    case SK_DW_PATCH_W: return set(s, 5, D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]);
    case SK_DW_TEXT0_W: return set(s, 2, D, c->text_dim, 0, 0, 0);
    case SK_DW_TEXT2_W: return set(s, 2, D, D, 0, 0, 0);
    case SK_DW_TIME0_W: return set(s, 2, D, c->freq_dim, 0, 0, 0);
    case SK_DW_TIME2_W: return set(s, 2, D, D, 0, 0, 0);
    case SK_DW_TPROJ_W: return set(s, 2, 6 * D, D, 0, 0, 0);
    case SK_DW_TPROJ_B: return set(s, 1, 6 * D, 0, 0, 0, 0);
    case SK_DW_HEAD_MOD: return set(s, 3, 1, 2, D, 0, 0);
    case SK_DW_HEAD_W:
        return set(s, 2, (int64_t)c->patch[0] * c->patch[1] * c->patch[2] * c->out_dim, D, 0, 0, 0);
    case SK_DW_HEAD_B:
        return set(s, 1, (int64_t)c->patch[0] * c->patch[1] * c->patch[2] * c->out_dim, 0, 0, 0, 0);
    default: return set(s, 1, D, 0, 0, 0, 0); /* the [D] biases */
    }
}

int sk_dit_block_shape(const sk_dit_config *c, sk_dit_block_id id, int64_t s[6])
{
    const int64_t D = c->dim;
    switch (id) {
    case SK_DB_MOD: return set(s, 3, 1, 6, D, 0, 0);
    case SK_DB_FFN0_W: return set(s, 2, c->ffn_dim, D, 0, 0, 0);
    case SK_DB_FFN0_B: return set(s, 1, c->ffn_dim, 0, 0, 0, 0);
    case SK_DB_FFN2_W: return set(s, 2, D, c->ffn_dim, 0, 0, 0);
    default:
        if (sk_dit_block_is_matrix(id)) return set(s, 2, D, D, 0, 0, 0);
        return set(s, 1, D, 0, 0, 0, 0);
    }
}

/* Prefixes stripped only at the start, tried repeatedly in this order. */
static const char *const k_lead[] = {"generator_ema.", "generator.", "module.", "model."};
/* Wrapper path components removed wherever they occur. */
static const char *const k_any[] = {"_orig_mod.", "_fsdp_wrapped_module.",
                                    "_checkpoint_wrapped_module."};

int sk_dit_strip_name(const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    if (n + 1 > cap) return 0;
    memcpy(buf, name, n + 1);
    for (size_t i = 0; i < sizeof k_any / sizeof k_any[0]; i++) {
        size_t pl = strlen(k_any[i]);
        char *p;
        while ((p = strstr(buf, k_any[i])) != NULL) memmove(p, p + pl, strlen(p + pl) + 1);
    }
    for (int again = 1; again;) {
        again = 0;
        for (size_t i = 0; i < sizeof k_lead / sizeof k_lead[0]; i++) {
            size_t pl = strlen(k_lead[i]);
            if (strncmp(buf, k_lead[i], pl) == 0) {
                memmove(buf, buf + pl, strlen(buf + pl) + 1);
                again = 1;
            }
        }
    }
    return 1;
}

int sk_dit_parse_name(const char *nm, int *global, int *block, int *layer)
{
    *global = -1; *block = -1; *layer = -1;
    for (int i = 0; i < SK_DW_COUNT_; i++)
        if (strcmp(nm, k_global[i]) == 0) { *global = i; return 1; }
    if (strncmp(nm, "blocks.", 7) != 0) return 0;
    const char *p = nm + 7;
    if (*p < '0' || *p > '9') return 0;
    char *end = NULL;
    long l = strtol(p, &end, 10);
    if (!end || *end != '.' || l < 0 || l > 100000 || (p[0] == '0' && end - p > 1)) return 0;
    for (int i = 0; i < SK_DB_COUNT_; i++)
        if (strcmp(end + 1, k_block[i]) == 0) { *block = i; *layer = (int)l; return 1; }
    return 0;
}
