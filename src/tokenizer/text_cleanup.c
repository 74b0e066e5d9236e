#include "tokenizer/text_cleanup.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- code point buffers ------------------------------------------------ */

cdf_status cdf_u32buf_reserve(cdf_u32buf *b, size_t cap, cdf_err *err) {
    if (cap <= b->cap) return CDF_OK;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < cap) {
        if (!cdf_mul_ok(nc, 2, &nc)) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "text buffer size overflow");
    }
    size_t bytes;
    if (!cdf_mul_ok(nc, sizeof(uint32_t), &bytes))
        return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "text buffer size overflow");
    uint32_t *v = realloc(b->v, bytes);
    if (!v) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes of text", bytes);
    b->v = v;
    b->cap = nc;
    return CDF_OK;
}

cdf_status cdf_u32buf_push(cdf_u32buf *b, uint32_t c, cdf_err *err) {
    if (b->n == b->cap) {
        cdf_status st = cdf_u32buf_reserve(b, b->n + 1, err);
        if (st) return st;
    }
    b->v[b->n++] = c;
    return CDF_OK;
}

cdf_status cdf_u32buf_append(cdf_u32buf *b, const uint32_t *c, size_t n, cdf_err *err) {
    size_t need;
    if (!cdf_add_ok(b->n, n, &need)) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "text buffer size overflow");
    cdf_status st = cdf_u32buf_reserve(b, need, err);
    if (st) return st;
    if (n) memcpy(b->v + b->n, c, n * sizeof *c);
    b->n += n;
    return CDF_OK;
}

void cdf_u32buf_free(cdf_u32buf *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ---- UTF-8 -------------------------------------------------------------- */

const char *cdf_utf8_next(const uint8_t *p, size_t len, size_t *pos, uint32_t *out) {
    size_t i = *pos;
    uint32_t b0 = p[i], c;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    const char *why_lo = NULL, *why_hi = NULL;
    if (b0 < 0x80) {
        *out = b0;
        *pos = i + 1;
        return NULL;
    } else if (b0 < 0xC0) {
        return "unexpected continuation byte";
    } else if (b0 < 0xC2) {
        return "overlong encoding";
    } else if (b0 < 0xE0) {
        need = 1;
        c = b0 & 0x1F;
    } else if (b0 < 0xF0) {
        need = 2;
        c = b0 & 0x0F;
        if (b0 == 0xE0) { lo = 0xA0; why_lo = "overlong encoding"; }
        if (b0 == 0xED) { hi = 0x9F; why_hi = "UTF-16 surrogate code point"; }
    } else if (b0 < 0xF5) {
        need = 3;
        c = b0 & 0x07;
        if (b0 == 0xF0) { lo = 0x90; why_lo = "overlong encoding"; }
        if (b0 == 0xF4) { hi = 0x8F; why_hi = "code point above U+10FFFF"; }
    } else {
        return "byte that never occurs in UTF-8";
    }
    for (size_t k = 1; k <= need; k++) {
        if (i + k >= len || (p[i + k] & 0xC0) != 0x80) return "truncated multi-byte sequence";
        if (k == 1 && (p[i + 1] < lo || p[i + 1] > hi)) return p[i + 1] < lo ? why_lo : why_hi;
        c = (c << 6) | (p[i + k] & 0x3F);
    }
    *out = c;
    *pos = i + need + 1;
    return NULL;
}

cdf_status cdf_utf8_decode(const char *s, size_t len, const char *what, cdf_u32buf *out, cdf_err *err) {
    const uint8_t *p = (const uint8_t *)s;
    cdf_status st = cdf_u32buf_reserve(out, out->n + len, err); /* never more code points than bytes */
    if (st) return st;
    size_t i = 0;
    while (i < len) {
        const char *why = cdf_utf8_next(p, len, &i, &out->v[out->n]);
        if (why)
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02X): %s",
                            what, i, (unsigned)p[i], why);
        out->n++;
    }
    return CDF_OK;
}

size_t cdf_utf8_put(uint32_t c, char out[4]) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- character classes -------------------------------------------------- */

static utf8proc_propval_t cat(uint32_t c) { return utf8proc_category((utf8proc_int32_t)c); }

int cdf_py_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

/* BERT's _is_control: any category C* (Cc Cf Cs Co Cn) except \t \n \r. */
static int is_bert_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_propval_t k = cat(c);
    return k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_CS || k == UTF8PROC_CATEGORY_CO;
}

/* BERT's _is_whitespace: space, \t, \n, \r or category Zs. */
static int is_bert_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || cat(c) == UTF8PROC_CATEGORY_ZS;
}

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks it lists. */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Python's str.lower() needs two properties utf8proc lacks, for its one
 * context-dependent rule (capital sigma becomes final sigma at the end of a
 * word). Both are derived from utf8proc data plus the code points that
 * Unicode adds from other property files. The whole clean-up was compared
 * with Python 3.11 (Unicode 14) for every assigned code point in sigma
 * contexts ("AΣc", "AcΣ", ...): identical.
 * Case_Ignorable = Mn Me Cf Lm Sk + Word_Break MidLetter/MidNumLet/Single_Quote. */
static int is_case_ignorable(uint32_t c) {
    switch (cat(c)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        break;
    }
    static const uint32_t word_break_mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                              0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                              0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof word_break_mid / sizeof word_break_mid[0]; i++)
        if (c == word_break_mid[i]) return 1;
    return 0;
}

/* Cased = Lu Ll Lt + Other_Lowercase + Other_Uppercase. Other_* characters
 * with a case mapping are caught by the mapping test; those without one and
 * not Case_Ignorable (the only ones the sigma rule ever asks about) are
 * ª º and the squared/negative-squared Latin capitals. */
static int is_cased(uint32_t c) {
    utf8proc_propval_t k = cat(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    utf8proc_int32_t i = (utf8proc_int32_t)c;
    if (utf8proc_tolower(i) != i || utf8proc_toupper(i) != i || utf8proc_totitle(i) != i) return 1;
    return c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189);
}

/* CPython's handle_capital_sigma: Σ is final when preceded by a cased
 * letter and not followed by one (case-ignorable characters skipped). */
static int sigma_is_final(const uint32_t *w, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(w[j - 1])) j--;
    if (j == 0 || !is_cased(w[j - 1])) return 0;
    j = i + 1;
    while (j < n && is_case_ignorable(w[j])) j++;
    return j == n || !is_cased(w[j]);
}

/* Python str.lower() of one word, appended to out. Full lower-casing differs
 * from utf8proc's simple mapping only for U+0130 (SpecialCasing.txt's one
 * unconditional multi-character lower mapping) and for the sigma rule. */
static cdf_status lower_word(const uint32_t *w, size_t n, cdf_u32buf *out, cdf_err *err) {
    cdf_status st = CDF_OK;
    for (size_t i = 0; i < n && !st; i++) {
        uint32_t c = w[i];
        if (c == 0x130) {
            st = cdf_u32buf_push(out, 'i', err);
            if (!st) st = cdf_u32buf_push(out, 0x307, err);
        } else if (c == 0x3A3) {
            st = cdf_u32buf_push(out, sigma_is_final(w, n, i) ? 0x3C2 : 0x3C3, err);
        } else {
            st = cdf_u32buf_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c), err);
        }
    }
    return st;
}

/* unicodedata.normalize("NFC", ...) through utf8proc's UTF-8 interface. */
static cdf_status nfc(const uint32_t *in, size_t n, cdf_u32buf *out, cdf_err *err) {
    out->n = 0;
    size_t bytes;
    if (!cdf_mul_ok(n, 4, &bytes)) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "text too long");
    char *u8 = cdf_malloc(bytes + 1, 1, err);
    if (!u8) return CDF_ERR_OUT_OF_MEMORY;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += cdf_utf8_put(in[i], u8 + len);
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t rl = utf8proc_map((const utf8proc_uint8_t *)u8, (utf8proc_ssize_t)len, &res,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(u8);
    if (rl < 0) return cdf_errf(err, CDF_ERR_INTERNAL, "NFC normalisation failed: %s", utf8proc_errmsg(rl));
    cdf_status st = cdf_utf8_decode((const char *)res, (size_t)rl, "NFC result", out, err);
    free(res);
    return st;
}

cdf_status cdf_clip_clean(const uint32_t *text, size_t n, cdf_u32buf *out, cdf_err *err) {
    cdf_u32buf a = {0}, b = {0};
    /* _clean_text then _tokenize_chinese_chars (at most 3 code points each). */
    size_t cap;
    if (!cdf_mul_ok(n, 3, &cap) || !cdf_add_ok(cap, 1, &cap))
        return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "text too long");
    cdf_status st = cdf_u32buf_reserve(&a, cap, err);
    for (size_t i = 0; i < n && !st; i++) {
        uint32_t c = text[i];
        if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
        if (is_bert_space(c)) {
            a.v[a.n++] = ' ';
        } else if (is_cjk(c)) {
            a.v[a.n++] = ' ';
            a.v[a.n++] = c;
            a.v[a.n++] = ' ';
        } else {
            a.v[a.n++] = c;
        }
    }
    if (!st) st = nfc(a.v, a.n, &b, err);
    /* whitespace_tokenize (str.split()), lower() per word, " ".join. */
    out->n = 0;
    size_t i = 0;
    while (!st && i < b.n) {
        while (i < b.n && cdf_py_isspace(b.v[i])) i++;
        size_t s = i;
        while (i < b.n && !cdf_py_isspace(b.v[i])) i++;
        if (i == s) break;
        if (out->n) st = cdf_u32buf_push(out, ' ', err);
        if (!st) st = lower_word(b.v + s, i - s, out, err);
    }
    cdf_u32buf_free(&a);
    cdf_u32buf_free(&b);
    return st;
}

/* ---- the pre-tokenisation pattern --------------------------------------
 * <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * with IGNORECASE, as the Python `regex` module (2022.10.31) runs it. */

static int is_letter(uint32_t c) {
    switch (cat(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return 1;
    default:
        return 0;
    }
}

static int is_number(uint32_t c) {
    utf8proc_propval_t k = cat(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* regex's \s is the White_Space property: Zs Zl Zp, U+0009-000D and U+0085. */
static int is_white_space(uint32_t c) {
    if ((c >= 0x09 && c <= 0x0D) || c == 0x85) return 1;
    utf8proc_propval_t k = cat(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* Simple case folding of one code point (utf8proc's full folding when it
 * yields a single code point, which is then the simple folding too). */
static uint32_t fold1(uint32_t c) {
    utf8proc_int32_t buf[4];
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 4, UTF8PROC_CASEFOLD, NULL);
    return n == 1 ? (uint32_t)buf[0] : c;
}

static int in_class_lns(uint32_t c) { return is_white_space(c) || is_letter(c) || is_number(c); }

/* [^\s\p{L}\p{N}] under IGNORECASE: regex tests a set against every case
 * variant of the character, so a non-letter whose upper/lower/folded form is
 * a letter (U+0345 COMBINING GREEK YPOGEGRAMMENI) is in none of the classes
 * and findall skips it. A bare [\p{L}] is compiled to a property test that
 * ignores case, so it is not widened the same way. */
static int is_other(uint32_t c) {
    if (in_class_lns(c)) return 0;
    if (c < 0x80) return 1;
    utf8proc_int32_t i = (utf8proc_int32_t)c;
    uint32_t v[4] = {(uint32_t)utf8proc_tolower(i), (uint32_t)utf8proc_toupper(i), (uint32_t)utf8proc_totitle(i),
                     fold1(c)};
    for (int k = 0; k < 4; k++)
        if (v[k] != c && in_class_lns(v[k])) return 0;
    return 1;
}

/* A pattern letter (ASCII lower case) against a text character, ignoring case:
 * equal simple case folds ('s' also matches U+017F LONG S). */
static int ci_eq(uint32_t text_c, char pat_c) {
    uint32_t p = (uint32_t)(unsigned char)pat_c;
    if (text_c < 0x80) return text_c == p || (text_c >= 'A' && text_c <= 'Z' && text_c + 32 == p);
    return fold1(text_c) == p;
}

static size_t match_literal(const uint32_t *t, size_t n, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (k >= n || !ci_eq(t[k], lit[k])) return 0;
    return k;
}

cdf_status cdf_clip_pretokenize(const uint32_t *t, size_t n, cdf_clip_piece_fn fn, void *user, cdf_err *err) {
    static const char *const literals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re",
                                           "'ve",             "'m",            "'ll", "'d"};
    size_t i = 0;
    while (i < n) {
        size_t len = 0;
        /* Every literal starts with '<' or '\'', which nothing else folds to. */
        for (size_t k = 0; (t[i] == '<' || t[i] == '\'') && k < sizeof literals / sizeof literals[0] && !len; k++)
            len = match_literal(t + i, n - i, literals[k]);
        if (!len) {
            if (is_letter(t[i])) {
                while (i + len < n && is_letter(t[i + len])) len++;
            } else if (is_number(t[i])) {
                len = 1;
            } else if (is_other(t[i])) {
                while (i + len < n && is_other(t[i + len])) len++;
            }
        }
        if (!len) { /* white space, or a character no alternative accepts */
            i++;
            continue;
        }
        cdf_status st = fn(user, t + i, len, err);
        if (st) return st;
        i += len;
    }
    return CDF_OK;
}
