/* output_png.c - the PNG-frames sink: DIR/frame_000000.png, frame_000001.png, ...
 *
 * 8-bit RGB through stb_image_write (the only translation unit that defines
 * STB_IMAGE_WRITE_IMPLEMENTATION). The directory is created if missing. stb
 * writes through our callback into a FILE we open ourselves, so a failed open or
 * short write is reported with errno's text and the file name. Without stb
 * (SK_HAVE_STB unset) opening fails with SK_E_UNSUPPORTED in output.c.
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
} png_sink;

typedef struct {
    FILE *f;
    int err; /* errno of the first failed fwrite */
} png_io;

static void png_write_cb(void *ctx, void *data, int size)
{
    png_io *io = ctx;
    if (io->err || size <= 0) return;
    if (fwrite(data, 1, (size_t)size, io->f) != (size_t)size) io->err = errno ? errno : EIO;
}

static sk_status png_write(sk_output *o, const float *rgb)
{
    png_sink *s = o->impl;
    sk_rgb_planar_to_rgb24(rgb, o->width, o->height, s->rgb, (size_t)o->width * 3);
    snprintf(s->name, s->name_cap, "%s/frame_%06lld.png", s->dir, (long long)o->frames);
    png_io io = {fopen(s->name, "wb"), 0};
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
    if (!s->dir || !s->name || !s->rgb) {
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
