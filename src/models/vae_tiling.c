/* Tiled VAE decoding and encoding, following diffusers 0.26.3's
 * AutoencoderKL.tiled_decode / tiled_encode step by step: tiles start every
 * 75% of a tile, each tile is decoded (encoded) alone, then every tile is
 * blended in place with the tile above (blend_v) and the tile to its left
 * (blend_h) over 25% of a tile, cropped to 75%, and the crops are joined.
 * The blends mutate the stored tiles, so a later blend sees earlier ones,
 * exactly as in diffusers. */
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"

typedef struct tile {
    float *p;       /* [B, C, th, tw] */
    int64_t th, tw;
} tile;

/* b[:, :, y, :] = a[:, :, a.th - e + y, :] * (1 - y/e) + b[:, :, y, :] * (y/e) for y < e */
static void blend_v(const tile *a, tile *b, int64_t B, int64_t C, int64_t extent) {
    int64_t e = extent < a->th ? extent : a->th;
    e = e < b->th ? e : b->th;
    for (int64_t n = 0; n < B * C; n++)
        for (int64_t y = 0; y < e; y++) {
            const float wb = (float)((double)y / (double)e), wa = (float)(1.0 - (double)y / (double)e);
            const float *ar = a->p + (n * a->th + (a->th - e + y)) * a->tw;
            float *br = b->p + (n * b->th + y) * b->tw;
            for (int64_t x = 0; x < b->tw; x++) br[x] = ar[x] * wa + br[x] * wb;
        }
}

/* b[:, :, :, x] = a[:, :, :, a.tw - e + x] * (1 - x/e) + b[:, :, :, x] * (x/e) for x < e */
static void blend_h(const tile *a, tile *b, int64_t B, int64_t C, int64_t extent) {
    int64_t e = extent < a->tw ? extent : a->tw;
    e = e < b->tw ? e : b->tw;
    for (int64_t n = 0; n < B * C; n++)
        for (int64_t y = 0; y < b->th; y++) {
            const float *ar = a->p + (n * a->th + y) * a->tw + (a->tw - e);
            float *br = b->p + (n * b->th + y) * b->tw;
            for (int64_t x = 0; x < e; x++) {
                const float wb = (float)((double)x / (double)e), wa = (float)(1.0 - (double)x / (double)e);
                br[x] = ar[x] * wa + br[x] * wb;
            }
        }
}

/* Copies in[:, :, y0:y0+th, x0:x0+tw] of an [B, C, H, W] tensor. */
static void crop(float *out, const float *in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t y0, int64_t x0,
                 int64_t th, int64_t tw) {
    for (int64_t n = 0; n < B * C; n++)
        for (int64_t y = 0; y < th; y++)
            memcpy(out + (n * th + y) * tw, in + (n * H + y0 + y) * W + x0, (size_t)tw * sizeof(float));
}

typedef cdf_status (*tile_fn)(cdf_exec *ex, const cdf_vae *v, float *out, const float *in, int64_t B, int64_t h,
                              int64_t w, cdf_err *err);

static cdf_status run_decode(cdf_exec *ex, const cdf_vae *v, float *out, const float *in, int64_t B, int64_t h,
                             int64_t w, cdf_err *err) {
    return cdf_vae_decode(ex, v, out, in, B, h, w, err);
}

static cdf_status run_encode(cdf_exec *ex, const cdf_vae *v, float *out, const float *in, int64_t B, int64_t h,
                             int64_t w, cdf_err *err) {
    return cdf_vae_encode_moments(ex, v, out, in, B, h, w, err);
}

/* The shared tiling loop. in: [B, Cin, H, W]; out: [B, Cout, H*num/den, W*num/den].
 * tile_in: input tile side; out_per_in = num/den (decode: f/1, encode: 1/f). */
static cdf_status tiled(cdf_exec *ex, const cdf_vae *v, tile_fn fn, float *out, const float *in, int64_t B,
                        int64_t Cin, int64_t Cout, int64_t H, int64_t W, int64_t tile_in, int64_t tile_out,
                        int64_t num, int64_t den, cdf_err *err) {
    const int64_t overlap = (int64_t)((double)tile_in * 0.75);   /* int(tile * (1 - 0.25)) */
    const int64_t blend = (int64_t)((double)tile_out * 0.25);
    const int64_t limit = tile_out - blend;
    if (overlap < 1 || limit < 1) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "vae tiling: tile size too small");
    const int64_t ny = (H + overlap - 1) / overlap, nx = (W + overlap - 1) / overlap;
    tile *t = cdf_calloc((size_t)(ny * nx), sizeof *t, err);
    float *inbuf = cdf_malloc((size_t)(B * Cin * tile_in * tile_in), sizeof(float), err);
    cdf_status st = (!t || !inbuf) ? CDF_ERR_OUT_OF_MEMORY : CDF_OK;
    for (int64_t i = 0; i < ny && !st; i++)
        for (int64_t j = 0; j < nx && !st; j++) {
            const int64_t y0 = i * overlap, x0 = j * overlap;
            const int64_t th = H - y0 < tile_in ? H - y0 : tile_in, tw = W - x0 < tile_in ? W - x0 : tile_in;
            tile *k = &t[i * nx + j];
            k->th = th * num / den;
            k->tw = tw * num / den;
            crop(inbuf, in, B, Cin, H, W, y0, x0, th, tw);
            if (!(k->p = cdf_malloc((size_t)(B * Cout * k->th * k->tw), sizeof(float), err))) st = CDF_ERR_OUT_OF_MEMORY;
            else st = fn(ex, v, k->p, inbuf, B, th, tw, err);
        }
    const int64_t Ho = H * num / den, Wo = W * num / den;
    int64_t oy = 0;
    for (int64_t i = 0; i < ny && !st; i++) {
        int64_t ox = 0, rh = 0;
        for (int64_t j = 0; j < nx; j++) {
            tile *k = &t[i * nx + j];
            if (i > 0) blend_v(&t[(i - 1) * nx + j], k, B, Cout, blend);
            if (j > 0) blend_h(&t[i * nx + j - 1], k, B, Cout, blend);
            const int64_t ch = k->th < limit ? k->th : limit, cw = k->tw < limit ? k->tw : limit;
            for (int64_t n = 0; n < B * Cout; n++)
                for (int64_t y = 0; y < ch && oy + y < Ho; y++)
                    memcpy(out + (n * Ho + oy + y) * Wo + ox, k->p + (n * k->th + y) * k->tw,
                           (size_t)(cw < Wo - ox ? cw : Wo - ox) * sizeof(float));
            ox += cw;
            rh = ch;
        }
        oy += rh;
    }
    if (t)
        for (int64_t i = 0; i < ny * nx; i++) free(t[i].p);
    free(t);
    free(inbuf);
    return st;
}

cdf_status cdf_vae_decode_tiled(cdf_exec *ex, const cdf_vae *v, float *image, const float *latents, int64_t B,
                                int64_t h, int64_t w, cdf_err *err) {
    const cdf_vae_config *c = cdf_vae_get_config(v);
    const int64_t f = cdf_vae_scale_factor(v), ts = c->sample_size, tl = ts / f;
    if (tl < 1 || (h <= tl && w <= tl)) return cdf_vae_decode(ex, v, image, latents, B, h, w, err);
    return tiled(ex, v, run_decode, image, latents, B, c->latent_channels, c->out_channels, h, w, tl, ts, f, 1, err);
}

cdf_status cdf_vae_encode_tiled(cdf_exec *ex, const cdf_vae *v, float *mean, float *stdv, float *logvar,
                                const float *image, int64_t B, int64_t H, int64_t W, cdf_err *err) {
    const cdf_vae_config *c = cdf_vae_get_config(v);
    const int64_t f = cdf_vae_scale_factor(v), ts = c->sample_size, tl = ts / f, L = c->latent_channels;
    if (tl < 1 || (H <= ts && W <= ts)) return cdf_vae_encode(ex, v, mean, stdv, logvar, image, B, H, W, err);
    if (H % f || W % f)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "vae: image size %lldx%lld must be a multiple of %lld",
                        (long long)H, (long long)W, (long long)f);
    float *mom = cdf_malloc((size_t)(B * 2 * L * (H / f) * (W / f)), sizeof(float), err);
    if (!mom) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = tiled(ex, v, run_encode, mom, image, B, c->in_channels, 2 * L, H, W, ts, tl, 1, f, err);
    if (!st) cdf_vae_moments_to_dist(mom, B, L, H / f, W / f, mean, stdv, logvar);
    free(mom);
    return st;
}
