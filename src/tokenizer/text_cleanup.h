/* Text side of the CLIP tokenizer (internal).
 *
 * Everything here works on arrays of Unicode code points (uint32_t) and
 * reproduces what Python does to a `str` in transformers' slow
 * CLIPTokenizer when ftfy is not installed:
 *   - strict UTF-8 decoding (Python only ever sees valid text);
 *   - BERT's BasicTokenizer(strip_accents=False, do_split_on_punc=False):
 *     _clean_text, _tokenize_chinese_chars, NFC, str.split(), str.lower();
 *   - regex.findall of CLIP's pre-tokenisation pattern (IGNORECASE), as a
 *     hand-written scanner.
 * Character properties come from utf8proc (Unicode 15); the few Python
 * properties utf8proc does not expose (Case_Ignorable, Cased) are derived
 * in text_cleanup.c, see the comments there. */
#ifndef CDF_TOKENIZER_TEXT_CLEANUP_H
#define CDF_TOKENIZER_TEXT_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* A growable code point array. */
typedef struct cdf_u32buf {
    uint32_t *v;
    size_t n, cap;
} cdf_u32buf;

cdf_status cdf_u32buf_reserve(cdf_u32buf *b, size_t cap, cdf_err *err);
cdf_status cdf_u32buf_push(cdf_u32buf *b, uint32_t c, cdf_err *err);
cdf_status cdf_u32buf_append(cdf_u32buf *b, const uint32_t *c, size_t n, cdf_err *err);
void cdf_u32buf_free(cdf_u32buf *b);

/* Decodes one code point of strict UTF-8 at p[*pos] (pos < len) into *out
 * and advances *pos; returns NULL, or the reason the bytes are not UTF-8
 * (then *pos is unchanged). */
const char *cdf_utf8_next(const uint8_t *p, size_t len, size_t *pos, uint32_t *out);

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). Appends the code points of s[0..len) to out. On bad input the
 * message reads "<what>: invalid UTF-8 at byte offset N (byte 0xXX): <reason>". */
cdf_status cdf_utf8_decode(const char *s, size_t len, const char *what, cdf_u32buf *out, cdf_err *err);

/* Writes the UTF-8 form of code point c (<= U+10FFFF) to out; returns its length (1-4). */
size_t cdf_utf8_put(uint32_t c, char out[4]);

/* Python's str.isspace() for one character (Unicode category Zs or
 * bidirectional class WS, B or S). */
int cdf_py_isspace(uint32_t c);

/* " ".join(BasicTokenizer(do_lower_case=True, strip_accents=False,
 * do_split_on_punc=False).tokenize(text)): the clean-up CLIPTokenizer runs
 * before its regex. Replaces out's contents. */
cdf_status cdf_clip_clean(const uint32_t *text, size_t n, cdf_u32buf *out, cdf_err *err);

/* regex.findall(CLIP pattern, text, IGNORECASE): calls fn once per match, in
 * order, with the match's code points. Stops at the first error fn returns. */
typedef cdf_status (*cdf_clip_piece_fn)(void *user, const uint32_t *piece, size_t n, cdf_err *err);
cdf_status cdf_clip_pretokenize(const uint32_t *text, size_t n, cdf_clip_piece_fn fn, void *user, cdf_err *err);

#endif
