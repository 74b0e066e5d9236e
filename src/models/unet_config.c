/* unet/config.json -> cdf_unet_config, with diffusers 0.26.3's defaults and
 * its reading of attention_head_dim (which, for these models, is the number
 * of heads per block: the historical naming quirk diffusers keeps). */
#include <string.h>

#include "models/unet.h"
#include "models/unet_internal.h"

/* Keys whose non-default values mean a model outside the SD 1.x/2.x family. */
static cdf_status refuse_if_set(const cdf_json *j, const char *key, cdf_err *err) {
    if (cdf_json_has(j, key))
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s: key '%s' is set; only Stable Diffusion 1.x/2.x UNets are supported (SDXL and other "
                        "conditioning variants are not)",
                        j->label, key);
    return CDF_OK;
}

static cdf_status expect_str(const cdf_json *j, const char *key, const char *def, const char *want, cdf_err *err) {
    const char *v;
    cdf_status st = cdf_json_str(j, key, def, &v, err);
    if (st) return st;
    if (strcmp(v, want) != 0)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: key '%s' is \"%s\"; only \"%s\" is supported", j->label, key,
                        v, want);
    return CDF_OK;
}

static cdf_status expect_false(const cdf_json *j, const char *key, cdf_err *err) {
    int v;
    cdf_status st = cdf_json_bool(j, key, 0, &v, err);
    if (!st && v) st = cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: key '%s' = true is not supported", j->label, key);
    return st;
}

cdf_status cdf_unet_read_config(cdf_unet_config *c, const cdf_json *j, cdf_err *err) {
    memset(c, 0, sizeof *c);
    cdf_status st;
    const char *keys_unset[] = {"class_embed_type", "addition_embed_type", "num_class_embeds", "encoder_hid_dim",
                                "encoder_hid_dim_type", "time_cond_proj_dim", "timestep_post_act",
                                "time_embedding_act_fn", "num_attention_heads", "cross_attention_norm",
                                "projection_class_embeddings_input_dim", "reverse_transformer_layers_per_block"};
    for (size_t i = 0; i < sizeof keys_unset / sizeof keys_unset[0]; i++)
        if ((st = refuse_if_set(j, keys_unset[i], err))) {
            if (strcmp(keys_unset[i], "num_attention_heads") == 0)
                cdf_errf(err, CDF_ERR_UNSUPPORTED,
                         "%s: key 'num_attention_heads' is set; diffusers 0.26 refuses it for UNet2DConditionModel "
                         "(use attention_head_dim)",
                         j->label);
            return st;
        }
    if ((st = expect_str(j, "act_fn", "silu", "silu", err)) ||
        (st = expect_str(j, "resnet_time_scale_shift", "default", "default", err)) ||
        (st = expect_str(j, "time_embedding_type", "positional", "positional", err)) ||
        (st = expect_str(j, "attention_type", "default", "default", err)) ||
        (st = expect_false(j, "dual_cross_attention", err)) || (st = expect_false(j, "only_cross_attention", err)) ||
        (st = expect_false(j, "resnet_skip_time_act", err)) || (st = expect_false(j, "class_embeddings_concat", err)))
        return st;
    int64_t v;
    if ((st = cdf_json_int(j, "sample_size", 64, &c->sample_size, err)) ||
        (st = cdf_json_int(j, "in_channels", 4, &c->in_channels, err)) ||
        (st = cdf_json_int(j, "out_channels", 4, &c->out_channels, err)) ||
        (st = cdf_json_bool(j, "center_input_sample", 0, &c->center_input_sample, err)) ||
        (st = cdf_json_bool(j, "flip_sin_to_cos", 1, &c->flip_sin_to_cos, err)) ||
        (st = cdf_json_num(j, "freq_shift", 0, &c->freq_shift, err)) ||
        (st = cdf_json_int(j, "downsample_padding", 1, &v, err)))
        return st;
    c->downsample_padding = (int)v;
    if ((st = cdf_json_num(j, "mid_block_scale_factor", 1.0, &c->mid_block_scale_factor, err)) ||
        (st = cdf_json_num(j, "resnet_out_scale_factor", 1.0, &c->resnet_out_scale_factor, err)) ||
        (st = cdf_json_int(j, "norm_num_groups", 32, &v, err)))
        return st;
    c->norm_num_groups = v >= 1 && v <= 65536 ? (int)v : 0; /* 0: refused below (no int truncation) */
    if ((st = cdf_json_num(j, "norm_eps", 1e-5, &c->norm_eps, err)) ||
        (st = cdf_json_bool(j, "use_linear_projection", 0, &c->use_linear_projection, err)) ||
        (st = cdf_json_bool(j, "upcast_attention", 0, &c->upcast_attention, err)))
        return st;
    int n = 0;
    const char *down[CDF_UNET_MAX_BLOCKS], *up[CDF_UNET_MAX_BLOCKS];
    int nd, nu;
    if ((st = cdf_json_int_list(j, "block_out_channels", c->block_out, CDF_UNET_MAX_BLOCKS, 0, &n, 1, err)) ||
        (st = cdf_json_str_list(j, "down_block_types", down, CDF_UNET_MAX_BLOCKS, &nd, err)) ||
        (st = cdf_json_str_list(j, "up_block_types", up, CDF_UNET_MAX_BLOCKS, &nu, err)))
        return st;
    if (n < 1 || nd != n || nu != n)
        return cdf_errf(err, CDF_ERR_FORMAT,
                        "%s: block_out_channels has %d entries but down_block_types has %d and up_block_types %d",
                        j->label, n, nd, nu);
    c->nblocks = n;
    for (int i = 0; i < n; i++) {
        if (strcmp(down[i], "CrossAttnDownBlock2D") == 0) c->down_cross[i] = 1;
        else if (strcmp(down[i], "DownBlock2D") != 0)
            return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                            "%s: down_block_types[%d] \"%s\" is not supported (CrossAttnDownBlock2D, DownBlock2D)",
                            j->label, i, down[i]);
        if (strcmp(up[i], "CrossAttnUpBlock2D") == 0) c->up_cross[i] = 1;
        else if (strcmp(up[i], "UpBlock2D") != 0)
            return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                            "%s: up_block_types[%d] \"%s\" is not supported (CrossAttnUpBlock2D, UpBlock2D)",
                            j->label, i, up[i]);
        if (c->block_out[i] <= 0 || c->block_out[i] > 65536 || c->norm_num_groups < 1 ||
            c->block_out[i] % c->norm_num_groups)
            return cdf_errf(err, CDF_ERR_FORMAT,
                            "%s: block_out_channels[%d] = %lld must be a positive multiple of norm_num_groups %d",
                            j->label, i, (long long)c->block_out[i], c->norm_num_groups);
    }
    const char *mid;
    if ((st = cdf_json_str(j, "mid_block_type", "UNetMidBlock2DCrossAttn", &mid, err))) return st;
    if (strcmp(mid, "UNetMidBlock2DCrossAttn") != 0)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s: mid_block_type \"%s\" is not supported (UNetMidBlock2DCrossAttn)", j->label, mid);
    c->mid_block_cross = 1;
    if ((st = cdf_json_int_list(j, "layers_per_block", c->layers_per_block, CDF_UNET_MAX_BLOCKS, n, NULL, 0, err)))
        return st;
    if (!cdf_json_has(j, "layers_per_block"))
        for (int i = 0; i < n; i++) c->layers_per_block[i] = 2;
    if (!cdf_json_has(j, "attention_head_dim")) {
        for (int i = 0; i < n; i++) c->heads[i] = 8;
    } else if ((st = cdf_json_int_list(j, "attention_head_dim", c->heads, CDF_UNET_MAX_BLOCKS, n, NULL, 0, err))) {
        return st;
    }
    if (!cdf_json_has(j, "transformer_layers_per_block")) {
        for (int i = 0; i < n; i++) c->tlayers[i] = 1;
    } else if ((st = cdf_json_int_list(j, "transformer_layers_per_block", c->tlayers, CDF_UNET_MAX_BLOCKS, n, NULL, 0,
                                       err))) {
        return st;
    }
    if (cdf_json_has(j, "cross_attention_dim")) {
        int cnt;
        int64_t cad[CDF_UNET_MAX_BLOCKS] = {0}; /* [] leaves 0, refused below (no uninitialised read) */
        if ((st = cdf_json_int_list(j, "cross_attention_dim", cad, CDF_UNET_MAX_BLOCKS, 0, &cnt, 0, err))) return st;
        for (int i = 1; i < cnt; i++)
            if (cad[i] != cad[0])
                return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: per-block cross_attention_dim is not supported",
                                j->label);
        c->cross_attention_dim = cad[0];
    } else {
        c->cross_attention_dim = 1280;
    }
    if ((st = cdf_json_int(j, "time_embedding_dim", 4 * c->block_out[0], &c->time_embed_dim, err)) ||
        (st = cdf_json_int(j, "conv_in_kernel", 3, &v, err)))
        return st;
    c->conv_in_kernel = (int)v;
    if ((st = cdf_json_int(j, "conv_out_kernel", 3, &v, err))) return st;
    c->conv_out_kernel = (int)v;
    for (int i = 0; i < n; i++) {
        if (c->layers_per_block[i] < 1 || c->layers_per_block[i] > 64 || c->tlayers[i] < 1 || c->tlayers[i] > 64)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: layers_per_block / transformer_layers_per_block out of range",
                            j->label);
        if (c->heads[i] < 1 || c->block_out[i] % c->heads[i])
            return cdf_errf(err, CDF_ERR_FORMAT,
                            "%s: attention_head_dim[%d] = %lld heads does not divide block_out_channels[%d] = %lld",
                            j->label, i, (long long)c->heads[i], i, (long long)c->block_out[i]);
    }
    if (c->in_channels < 1 || c->in_channels > 64 || c->out_channels < 1 || c->out_channels > 64 ||
        c->cross_attention_dim < 1 || c->cross_attention_dim > 1 << 16 || c->time_embed_dim < 1 ||
        c->time_embed_dim > 1 << 16 || c->conv_in_kernel < 1 || c->conv_in_kernel > 7 || !(c->conv_in_kernel & 1) ||
        c->conv_out_kernel < 1 || c->conv_out_kernel > 7 || !(c->conv_out_kernel & 1) || c->norm_eps <= 0 ||
        c->downsample_padding < 0 || c->downsample_padding > 1 || c->mid_block_scale_factor == 0 ||
        c->resnet_out_scale_factor == 0 || (c->block_out[0] & 1))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: a size or kernel value is out of range", j->label);
    return CDF_OK;
}
