/* output_png.c - the PNG-frames sink: DIR/frame_000000.png, frame_000001.png, ...
 *
 * 8-bit RGB through stb_image_write (the only translation unit that defines
 * STB_IMAGE_WRITE_IMPLEMENTATION). The directory is created if missing. stb
 * writes through our callback into a FILE we open ourselves, so a failed open or
 * short write is reported with errno's text and the file name. Without stb
 * (SK_HAVE_STB unset) opening fails with SK_E_UNSUPPORTED in output.c.
 * params.metadata become iTXt chunks (UTF-8 text, keyword = key) right after
 * IHDR of every frame, readable with e.g. PIL's Image.text or exiftool.
 * Tested by tests/test_output.c (read back with stb_image). */
#include "runtime/output/output_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SK_HAVE_STB
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ASSERT(x) ((void)0) /* no assert() aborts in the library */
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

typedef struct {
    char *dir;      /* without trailing '/' */
    char *name;     /* scratch for DIR/frame_NNNNNN.png */
    size_t name_cap;
    uint8_t *rgb;   /* packed RGB24 [H, W, 3] */
    uint8_t *text;  /* the iTXt chunks of params.metadata, ready to write */
    size_t text_len;
} png_sink;

typedef struct {
    FILE *f;
    int err; /* errno of the first failed fwrite */
    const uint8_t *text;
    size_t text_len;
} png_io;

static void io_put(png_io *io, const void *p, size_t n)
{
    if (!io->err && n && fwrite(p, 1, n, io->f) != n) io->err = errno ? errno : EIO;
}

/* stb hands the whole PNG over in one call: signature (8) + IHDR chunk (25),
 * then the rest; the text chunks go between the two */
static void png_write_cb(void *ctx, void *data, int size)
{
    png_io *io = ctx;
    if (io->err || size <= 0) return;
    const size_t head = 8 + 25;
    if (io->text_len && (size_t)size > head) {
        io_put(io, data, head);
        io_put(io, io->text, io->text_len);
        io_put(io, (const uint8_t *)data + head, (size_t)size - head);
    } else {
        io_put(io, data, (size_t)size);
    }
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* iTXt chunks for "key", "value", ... (keywords cut to PNG's 79 bytes) */
static uint8_t *make_text_chunks(const char *const *kv, size_t *len)
{
    size_t cap = 0;
    for (const char *const *p = kv; p && p[0] && p[1]; p += 2) cap += 12 + 79 + 5 + strlen(p[1]);
    *len = 0;
    if (!cap) return NULL;
    uint8_t *buf = malloc(cap), *w = buf;
    if (!buf) return NULL;
    for (const char *const *p = kv; p[0] && p[1]; p += 2) {
        size_t klen = strlen(p[0]), vlen = strlen(p[1]);
        if (klen > 79) klen = 79;
        if (!klen) continue;
        const size_t dlen = klen + 5 + vlen; /* key \0 flag method lang\0 tkey\0 text */
        be32(w, (uint32_t)dlen);
        memcpy(w + 4, "iTXt", 4);
        uint8_t *d = w + 8;
        memcpy(d, p[0], klen);
        memset(d + klen, 0, 5);
        memcpy(d + klen + 5, p[1], vlen);
        be32(d + dlen, stbiw__crc32(w + 4, (int)dlen + 4));
        w = d + dlen + 4;
    }
    *len = (size_t)(w - buf);
    return buf;
}

static sk_status png_write(sk_output *o, const float *rgb)
{
    png_sink *s = o->impl;
    sk_rgb_planar_to_rgb24(rgb, o->width, o->height, s->rgb, (size_t)o->width * 3);
    snprintf(s->name, s->name_cap, "%s/frame_%06lld.png", s->dir, (long long)o->frames);
    png_io io = {fopen(s->name, "wb"), 0, s->text, s->text_len};
    if (!io.f)
        return SK_ERR(SK_E_IO, "output '%s': cannot create '%s': %s", o->path, s->name,
                      strerror(errno));
    errno = 0;
    int ok = stbi_write_png_to_func(png_write_cb, &io, o->width, o->height, 3, s->rgb,
                                    o->width * 3);
    int close_err = fclose(io.f) != 0 ? errno : 0;
    if (!ok)
        return SK_ERR(SK_E_OOM, "output '%s': PNG encoding of '%s' failed (stb_image_write: out "
                      "of memory?)", o->path, s->name);
    if (io.err || close_err)
        return SK_ERR(SK_E_IO, "output '%s': writing '%s' failed: %s (disk full?)", o->path,
                      s->name, strerror(io.err ? io.err : close_err));
    return SK_OK;
}

static sk_status png_close(sk_output *o)
{
    png_sink *s = o->impl;
    o->impl = NULL;
    if (s) {
        free(s->dir);
        free(s->name);
        free(s->rgb);
        free(s->text);
        free(s);
    }
    return SK_OK; /* every frame is a complete file already */
}

static const sk_output_vtbl k_png_vtbl = {png_write, png_close};

sk_status sk_output_png_open(sk_output *o, const sk_output_params *p)
{
    SK_TRY(sk_output_mkdirs(o->path));
    /* fail at open, not at the first frame, when the directory is read-only */
    SK_CHECK(access(o->path, W_OK | X_OK) == 0, SK_E_IO,
             "output '%s': cannot write into the frames directory: %s", o->path, strerror(errno));
    png_sink *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "output '%s': out of memory", o->path);
    s->dir = strdup(o->path);
    s->name_cap = strlen(o->path) + 32;
    s->name = malloc(s->name_cap);
    s->rgb = malloc((size_t)o->width * (size_t)o->height * 3);
    if (p->metadata) s->text = make_text_chunks(p->metadata, &s->text_len);
    if (!s->dir || !s->name || !s->rgb || (p->metadata && p->metadata[0] && !s->text)) {
        o->impl = s;
        png_close(o);
        return SK_ERR(SK_E_OOM, "output '%s': out of memory for a %dx%d frame", o->path,
                      o->width, o->height);
    }
    size_t n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/') s->dir[--n] = 0;
    o->impl = s;
    o->vt = &k_png_vtbl;
    return SK_OK;
}

#else /* !SK_HAVE_STB */

sk_status sk_output_png_open(sk_output *o, const sk_output_params *p)
{
    return SK_ERR(SK_E_UNSUPPORTED, "output '%s': built without stb_image_write.h (libstb-dev)",
                  o->path);
}

#endif
