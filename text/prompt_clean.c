/* prompt_clean.c - Wan's prompt cleaning (see prompt_clean.h).
 *
 * Wan: whitespace_clean(basic_clean(text)) =
 *   ftfy.fix_text(text) -> html.unescape(html.unescape(.)) -> strip()
 *   -> regex.sub(r'\s+', ' ', .) -> strip()
 *
 * The text is worked on as an array of code points. What is reproduced of
 * ftfy 6.3 fix_text (default config), in its order, per line segment and
 * repeated until nothing changes (as ftfy does):
 *   - unescape_html: "&name;" for HTML5 names (HTML 4 set + legacy names, see
 *     clean_tables.h), ftfy's all-caps variants ("&EACUTE;" -> "É"), and
 *     "&#N;" / "&#xH;" with a semicolon. ftfy's "auto" rule: once a line
 *     containing '<' is seen, this step is off for it and every later line;
 *   - fix_c1_controls: U+0080..U+009F read as Windows-1252 ("sloppy": the
 *     five undefined bytes stay);
 *   - fix_latin_ligatures (ﬁ -> fi, Ĳ -> IJ, ...), fix_character_width
 *     (fullwidth/halfwidth forms, U+3000 -> space), uncurl_quotes
 *     (U+02BC, U+2018..U+201B -> ', U+201C..U+201F -> ");
 *   - remove_terminal_escapes (ESC [ digits/; letter) and remove_control_chars
 *     (U+0000..0008, 000B, 000E..001F, 007F, 206A..206F, FEFF, FFF9..FFFC).
 * What ftfy does that we do NOT reproduce:
 *   - fix_encoding (mojibake repair: UTF-8 decoded as Latin-1/Windows-1252 and
 *     friends, restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8):
 *     a heuristic needing ftfy's character-class tables; text that is not
 *     mojibake is unaffected;
 *   - NFC normalization: umT5's SentencePiece model normalizes with NFKC,
 *     and NFKC(NFC(x)) == NFKC(x), so the token ids do not change;
 *   - fix_line_breaks (\r\n, \r, U+2028/9 -> \n): the whitespace collapse below
 *     turns all of them into one space anyway;
 *   - HTML5 entity names outside the HTML 4 set (e.g. "&HilbertSpace;").
 * html.unescape is Python's, including numeric references without ';',
 * legacy names without ';' and its longest-prefix rule ("&notit;" -> "¬it;"),
 * Windows-1252 for &#128;..&#159;, U+FFFD for 0/surrogates/too large, and
 * nothing for the "invalid code points" (C0/C1 controls, non-characters).
 * strip() uses str.isspace, the collapse uses Unicode White_Space (regex's \s).
 */
#include "prompt_clean.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clean_tables.h"

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpv;

static int cpv_push(cpv *b, uint32_t c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return 0;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
    return 1;
}

static void cpv_free(cpv *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- UTF-8 */
static int utf8_decode(const char *s, cpv *out)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c = *p, min = 0;
        int len = 1;
        if (c < 0x80) len = 1;
        else if ((c & 0xE0) == 0xC0) { len = 2; c &= 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; c &= 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; c &= 0x07; min = 0x10000; }
        else len = 0;
        int ok = len > 0;
        for (int i = 1; ok && i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) ok = 0;
            else c = (c << 6) | (p[i] & 0x3F);
        }
        if (ok && (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))) ok = 0;
        if (!ok) { c = 0xFFFD; len = 1; }
        if (!cpv_push(out, c)) return 0;
        p += len;
    }
    return 1;
}

static char *utf8_encode(const cpv *b)
{
    char *s = malloc(b->n * 4 + 1), *q = s;
    if (!s) return NULL;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t c = b->v[i];
        if (c < 0x80) *q++ = (char)c;
        else if (c < 0x800) { *q++ = (char)(0xC0 | (c >> 6)); *q++ = (char)(0x80 | (c & 0x3F)); }
        else if (c < 0x10000) {
            *q++ = (char)(0xE0 | (c >> 12));
            *q++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *q++ = (char)(0x80 | (c & 0x3F));
        } else {
            *q++ = (char)(0xF0 | (c >> 18));
            *q++ = (char)(0x80 | ((c >> 12) & 0x3F));
            *q++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *q++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *q = 0;
    return s;
}

/* ---------------------------------------------------------------- tables */
/* Windows-1252 for 0x80..0x9F; 0 = undefined (the code point stays). */
static const uint16_t k_cp1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
    0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

static uint32_t cp1252(uint32_t c)
{
    uint32_t m = k_cp1252[c - 0x80];
    return m ? m : c;
}

/* ftfy LIGATURES: Latin typographic ligatures and legacy digraphs. */
static const struct { uint32_t c; uint32_t r[3]; } k_ligatures[] = {
    {0x0132, {'I', 'J', 0}}, {0x0133, {'i', 'j', 0}}, {0x0149, {0x02BC, 'n', 0}},
    {0x01C4, {'D', 0x017D, 0}}, {0x01C5, {'D', 0x017E, 0}}, {0x01C6, {'d', 0x017E, 0}},
    {0x01C7, {'L', 'J', 0}}, {0x01C8, {'L', 'j', 0}}, {0x01C9, {'l', 'j', 0}},
    {0x01CA, {'N', 'J', 0}}, {0x01CB, {'N', 'j', 0}}, {0x01CC, {'n', 'j', 0}},
    {0x01F1, {'D', 'Z', 0}}, {0x01F2, {'D', 'z', 0}}, {0x01F3, {'d', 'z', 0}},
    {0xFB00, {'f', 'f', 0}}, {0xFB01, {'f', 'i', 0}}, {0xFB02, {'f', 'l', 0}},
    {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}}, {0xFB05, {0x017F, 't', 0}},
    {0xFB06, {'s', 't', 0}},
};

static int is_ftfy_control(uint32_t c)
{
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Unicode White_Space: what the `regex` module's \s matches. */
static int is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Python str.isspace (what strip() removes): White_Space plus U+001C..U+001F. */
static int is_py_space(uint32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

static int is_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hexval(uint32_t c)
{
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

static int ent_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const sk_html_entity *)elem)->name);
}

/* Entity by name (ASCII code points v[0..n)) with one of `flags`; NULL if none. */
static const sk_html_entity *entity_find(const uint32_t *v, size_t n, unsigned flags)
{
    char name[40];
    if (n == 0 || n >= sizeof name) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == 0 || v[i] > 0x7E) return NULL;
        name[i] = (char)v[i];
    }
    name[n] = 0;
    const sk_html_entity *e = bsearch(name, k_html_entities,
                                      sizeof k_html_entities / sizeof k_html_entities[0],
                                      sizeof k_html_entities[0], ent_cmp);
    return (e && (e->flags & flags)) ? e : NULL;
}

/* Python html._replace_charref for a number: the replacement (0 or 1 code point). */
static int charref_number(uint64_t num, int overflow, uint32_t *out)
{
    if (overflow || num > 0x10FFFF || (num >= 0xD800 && num <= 0xDFFF) || num == 0) {
        *out = 0xFFFD;
        return 1;
    }
    uint32_t c = (uint32_t)num;
    if (c == 0x0D) { *out = c; return 1; }
    if (c >= 0x80 && c <= 0x9F) { *out = cp1252(c); return 1; }
    /* html._invalid_codepoints: nothing */
    if ((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
        (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE)
        return 0;
    *out = c;
    return 1;
}

/* Parses the digits of a numeric reference at v[i..n): hex or decimal.
 * Returns the number of digit code points consumed (0: none). */
static size_t parse_number(const uint32_t *v, size_t i, size_t n, int hex, uint64_t *num,
                           int *overflow)
{
    size_t j = i;
    *num = 0;
    *overflow = 0;
    for (; j < n; j++) {
        int d = hex ? hexval(v[j]) : ((v[j] >= '0' && v[j] <= '9') ? (int)(v[j] - '0') : -1);
        if (d < 0) break;
        if (*num > 0xFFFFFFFFull) *overflow = 1;
        else *num = *num * (hex ? 16 : 10) + (uint64_t)d;
    }
    return j - i;
}

/* ---------------------------------------------------------------- ftfy steps */
/* ftfy.fixes.unescape_html: regex &#?[0-9A-Za-z]{1,24}; */
static int ftfy_unescape(const cpv *in, cpv *out)
{
    size_t n = in->n;
    const uint32_t *v = in->v;
    for (size_t i = 0; i < n;) {
        if (v[i] != '&') { if (!cpv_push(out, v[i++])) return 0; continue; }
        size_t j = i + 1;
        int hash = j < n && v[j] == '#';
        if (hash) j++;
        size_t a = j;
        while (j < n && j - a < 25 && is_alnum(v[j])) j++;
        size_t len = j - a;
        int matched = len >= 1 && len <= 24 && j < n && v[j] == ';';
        if (matched) {
            uint32_t rep[2];
            int nrep = -1;
            if (hash) {
                /* html.unescape on "&#...;"; kept unless it decodes the whole thing */
                int hex = v[a] == 'x' || v[a] == 'X';
                uint64_t num;
                int ovf;
                size_t nd = parse_number(v, a + (size_t)hex, j, hex, &num, &ovf);
                if (nd > 0 && a + (size_t)hex + nd == j) {
                    nrep = charref_number(num, ovf, &rep[0]);
                    if (nrep == 1 && rep[0] == ';') nrep = -1;
                }
            } else {
                const sk_html_entity *e =
                    entity_find(v + a, len, SK_HTML_ENT_SEMI | SK_HTML_ENT_UPPER);
                if (e) {
                    nrep = e->ncp;
                    rep[0] = e->cp[0];
                    rep[1] = e->cp[1];
                }
            }
            if (nrep >= 0) {
                for (int k = 0; k < nrep; k++)
                    if (!cpv_push(out, rep[k])) return 0;
                i = j + 1;
                continue;
            }
        }
        if (!cpv_push(out, v[i++])) return 0;
    }
    return 1;
}

/* The per-character ftfy fixers, in ftfy's order, one pass. */
static int ftfy_chars(const cpv *in, cpv *out)
{
    cpv a = {0}, b = {0};
    int ok = 0;
    /* c1 controls, ligatures, width, quotes: all code point -> code points */
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c >= 0x80 && c <= 0x9F) c = cp1252(c);
        uint32_t r[3] = {c, 0, 0};
        for (size_t k = 0; k < sizeof k_ligatures / sizeof k_ligatures[0]; k++)
            if (k_ligatures[k].c == c) memcpy(r, k_ligatures[k].r, sizeof r);
        uint32_t r2[6];
        int n2 = 0;
        for (int k = 0; k < 3 && r[k]; k++) {
            uint32_t x = r[k];
            int done = 0;
            if (x == 0x3000 || (x >= 0xFF01 && x <= 0xFFEF)) {
                size_t lo = 0, hi = sizeof k_width_map / sizeof k_width_map[0];
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (k_width_map[mid][0] < x) lo = mid + 1;
                    else hi = mid;
                }
                if (lo < sizeof k_width_map / sizeof k_width_map[0] && k_width_map[lo][0] == x) {
                    r2[n2++] = k_width_map[lo][1];
                    if (k_width_map[lo][2]) r2[n2++] = k_width_map[lo][2];
                    done = 1;
                }
            }
            if (!done) r2[n2++] = x;
        }
        for (int k = 0; k < n2; k++) {
            uint32_t x = r2[k];
            if (x == 0x02BC || (x >= 0x2018 && x <= 0x201B)) x = '\'';
            else if (x >= 0x201C && x <= 0x201F) x = '"';
            if (!cpv_push(&a, x)) goto done;
        }
    }
    /* terminal escapes: ESC [ (digit|;)* letter */
    for (size_t i = 0; i < a.n;) {
        if (a.v[i] == 0x1B && i + 1 < a.n && a.v[i + 1] == '[') {
            size_t j = i + 2;
            while (j < a.n && ((a.v[j] >= '0' && a.v[j] <= '9') || a.v[j] == ';')) j++;
            if (j < a.n && ((a.v[j] | 0x20) >= 'a' && (a.v[j] | 0x20) <= 'z')) {
                i = j + 1;
                continue;
            }
        }
        if (!cpv_push(&b, a.v[i++])) goto done;
    }
    /* control characters */
    for (size_t i = 0; i < b.n; i++)
        if (!is_ftfy_control(b.v[i]) && !cpv_push(out, b.v[i])) goto done;
    ok = 1;
done:
    cpv_free(&a);
    cpv_free(&b);
    return ok;
}

static int cpv_equal(const cpv *a, const cpv *b)
{
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* ftfy.fix_text: per line (segments end after '\n'), fixers repeated until stable. */
static int ftfy_fix_text(const cpv *in, cpv *out)
{
    int unescape = 1; /* "auto": turned off for good by the first line with '<' */
    for (size_t s = 0; s < in->n;) {
        size_t e = s;
        while (e < in->n && in->v[e] != '\n') e++;
        if (e < in->n) e++; /* the segment keeps its '\n' */
        cpv cur = {0}, t = {0}, u = {0};
        int ok = 1;
        for (size_t i = s; i < e && ok; i++) {
            if (in->v[i] == '<') unescape = 0;
            ok = cpv_push(&cur, in->v[i]);
        }
        for (int iter = 0; ok && iter < 64; iter++) {
            t.n = u.n = 0;
            if (unescape) ok = ftfy_unescape(&cur, &t);
            else for (size_t i = 0; ok && i < cur.n; i++) ok = cpv_push(&t, cur.v[i]);
            ok = ok && ftfy_chars(&t, &u);
            if (!ok) break;
            int same = cpv_equal(&u, &cur);
            cpv tmp = cur;
            cur = u;
            u = tmp;
            if (same) break;
        }
        for (size_t i = 0; ok && i < cur.n; i++) ok = cpv_push(out, cur.v[i]);
        cpv_free(&cur);
        cpv_free(&t);
        cpv_free(&u);
        if (!ok) return 0;
        s = e;
    }
    return 1;
}

/* ---------------------------------------------------------------- html.unescape */
static int in_name_char(uint32_t c)
{
    return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' ||
             c == '#' || c == ';');
}

/* Python html.unescape:
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) */
static int py_html_unescape(const cpv *in, cpv *out)
{
    size_t n = in->n;
    const uint32_t *v = in->v;
    for (size_t i = 0; i < n;) {
        if (v[i] != '&' || i + 1 >= n) { if (!cpv_push(out, v[i++])) return 0; continue; }
        size_t j = i + 1;
        if (v[j] == '#') {
            int hex = j + 1 < n && (v[j + 1] == 'x' || v[j + 1] == 'X');
            size_t a = j + 1 + (size_t)hex;
            uint64_t num;
            int ovf;
            size_t nd = parse_number(v, a, n, hex, &num, &ovf);
            if (nd > 0) {
                size_t end = a + nd;
                if (end < n && v[end] == ';') end++;
                uint32_t c;
                if (charref_number(num, ovf, &c) && !cpv_push(out, c)) return 0;
                i = end;
                continue;
            }
            if (!cpv_push(out, v[i++])) return 0;
            continue;
        }
        size_t a = j;
        while (j < n && j - a < 32 && in_name_char(v[j])) j++;
        size_t len = j - a;
        if (len == 0) { if (!cpv_push(out, v[i++])) return 0; continue; }
        int semi = j < n && v[j] == ';';
        size_t slen = len + (size_t)semi; /* Python's s includes the ';' */
        const sk_html_entity *e =
            entity_find(v + a, len, semi ? SK_HTML_ENT_SEMI : SK_HTML_ENT_LEGACY);
        size_t used = len;
        int direct = e != NULL; /* a direct match consumes the ';' too */
        if (!e) {
            /* longest prefix s[:x], x = len(s)-1 .. 2, among legacy names */
            for (size_t x = slen - 1; x >= 2 && x <= len; x--) {
                e = entity_find(v + a, x, SK_HTML_ENT_LEGACY);
                if (e) { used = x; break; }
            }
        }
        if (!e) { /* '&' + s unchanged */
            for (size_t k = i; k < a + slen; k++)
                if (!cpv_push(out, v[k])) return 0;
            i = a + slen;
            continue;
        }
        for (int k = 0; k < e->ncp; k++)
            if (!cpv_push(out, e->cp[k])) return 0;
        i = a + used + ((direct && semi) ? 1 : 0);
    }
    return 1;
}

/* ---------------------------------------------------------------- entry */
sk_status sk_prompt_clean(const char *text, char **out)
{
    SK_CHECK(text && out, SK_E_INVALID_ARG, "prompt clean: NULL text");
    *out = NULL;
    cpv a = {0}, b = {0};
    sk_status st = SK_E_OOM;
    if (!utf8_decode(text, &a)) goto done;
    if (!ftfy_fix_text(&a, &b)) goto done;
    for (int pass = 0; pass < 2; pass++) {
        a.n = 0;
        if (!py_html_unescape(&b, &a)) goto done;
        cpv t = a; a = b; b = t;
    }
    /* b: after unescape twice. strip (isspace), collapse White_Space runs, strip. */
    size_t s = 0, e = b.n;
    while (s < e && is_py_space(b.v[s])) s++;
    while (e > s && is_py_space(b.v[e - 1])) e--;
    a.n = 0;
    for (size_t i = s; i < e;) {
        if (is_white_space(b.v[i])) {
            while (i < e && is_white_space(b.v[i])) i++;
            if (!cpv_push(&a, ' ')) goto done;
        } else if (!cpv_push(&a, b.v[i++])) {
            goto done;
        }
    }
    s = 0;
    e = a.n;
    while (s < e && is_py_space(a.v[s])) s++;
    while (e > s && is_py_space(a.v[e - 1])) e--;
    cpv view = {a.v + s, e - s, e - s};
    *out = utf8_encode(&view);
    if (*out) st = SK_OK;
done:
    cpv_free(&a);
    cpv_free(&b);
    if (st != SK_OK) return SK_ERR(SK_E_OOM, "prompt clean: out of memory on a %zu-byte prompt",
                                   strlen(text));
    return st;
}
