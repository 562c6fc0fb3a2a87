/* output_rgb.c - the raw-RGB check sink: one safetensors file with tensor
 * `frames` [T, 3, H, W] f32, values exactly as the decoder produced them (no
 * clamping), plus metadata fps ("num/den"), width, height, frames.
 *
 * T is unknown until close, and safetensors puts the shapes in the header before
 * the data, so frames are buffered in memory and the file is written at close
 * through runtime/io/safetensors.h's writer (atomic: temp file + rename). This is
 * a check format for short clips (81 frames of 832x480 = 389 MB); long runs
 * should use a video or PNG sink. The target directory is checked for write
 * access at open, so a bad path fails before any work is done.
 * Tested by tests/test_output.c (round trip through sk_st_open). */
#include "runtime/output/output_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/core/log.h"
#include "runtime/io/safetensors.h"

typedef struct {
    float *buf;       /* [cap, 3, H, W] */
    int64_t n, cap;   /* frames held, frames allocated */
    int fps_num, fps_den;
} rgb_sink;

static sk_status rgb_write(sk_output *o, const float *rgb)
{
    rgb_sink *s = o->impl;
    const size_t per = 3 * (size_t)o->width * (size_t)o->height;
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 16;
        float *nb = realloc(s->buf, (size_t)cap * per * sizeof(float));
        SK_CHECK(nb, SK_E_OOM, "output '%s': out of memory buffering frame %lld (%.1f MB); the "
                 ".safetensors sink holds all frames until close, use a video or --frames-dir "
                 "for long runs", o->path, (long long)s->n,
                 (double)cap * (double)per * 4.0 / 1e6);
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + (size_t)s->n * per, rgb, per * sizeof(float));
    s->n++;
    return SK_OK;
}

static sk_status rgb_close(sk_output *o)
{
    rgb_sink *s = o->impl;
    o->impl = NULL;
    sk_st_writer *w = NULL;
    sk_status st = sk_st_writer_create(&w);
    const int64_t shape[4] = {s->n, 3, o->height, o->width};
    const size_t nbytes = (size_t)s->n * 3 * (size_t)o->width * (size_t)o->height * sizeof(float);
    static const float k_empty[1] = {0.0f};
    char v[64];
    if (st == SK_OK)
        st = sk_st_writer_add_raw(w, "frames", SK_DTYPE_F32, 4, shape, s->n ? s->buf : k_empty,
                                  nbytes);
    snprintf(v, sizeof v, "%d/%d", s->fps_num, s->fps_den);
    if (st == SK_OK) st = sk_st_writer_meta(w, "fps", v);
    snprintf(v, sizeof v, "%d", o->width);
    if (st == SK_OK) st = sk_st_writer_meta(w, "width", v);
    snprintf(v, sizeof v, "%d", o->height);
    if (st == SK_OK) st = sk_st_writer_meta(w, "height", v);
    snprintf(v, sizeof v, "%lld", (long long)s->n);
    if (st == SK_OK) st = sk_st_writer_meta(w, "frames", v);
    if (st == SK_OK) st = sk_st_writer_meta(w, "layout", "frames [T, 3, H, W] RGB f32 in [0, 1]");
    if (st == SK_OK) st = sk_st_writer_save(w, o->path);
    if (st != SK_OK && !strstr(sk_error_message(), o->path)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sk_error_message());
        st = SK_ERR(st, "output '%s': %s", o->path, msg);
    }
    sk_st_writer_free(&w);
    free(s->buf);
    free(s);
    return st;
}

static const sk_output_vtbl k_rgb_vtbl = {rgb_write, rgb_close};

sk_status sk_output_rgb_open(sk_output *o, const sk_output_params *p)
{
    /* the file itself is written at close: check now that it can be */
    char *dir = strdup(o->path);
    SK_CHECK(dir, SK_E_OOM, "output '%s': out of memory", o->path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    struct stat sb;
    int e = 0;
    if (stat(dir, &sb) != 0) e = errno;
    else if (!S_ISDIR(sb.st_mode)) e = ENOTDIR;
    else if (access(dir, W_OK | X_OK) != 0) e = errno;
    if (e) {
        sk_status s = SK_ERR(SK_E_IO, "output '%s': cannot write into directory '%s': %s", o->path,
                             dir, strerror(e));
        free(dir);
        return s;
    }
    free(dir);
    SK_CHECK(stat(o->path, &sb) != 0 || S_ISREG(sb.st_mode), SK_E_IO,
             "output '%s': exists and is not a regular file", o->path);
    rgb_sink *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "output '%s': out of memory", o->path);
    s->fps_num = p->fps_num;
    s->fps_den = p->fps_den;
    o->impl = s;
    o->vt = &k_rgb_vtbl;
    return SK_OK;
}
