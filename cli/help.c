#include <stdio.h>
#include <string.h>

#include "commands.h"

static const char *main_help =
    "usage: cdiffusers [generate] [options]          text to image (the default command)\n"
    "       cdiffusers tokenize --model DIR PROMPT...  print CLIP token ids, one JSON array per prompt\n"
    "       cdiffusers run-component --model DIR --component NAME --input IN --output OUT\n"
    "       cdiffusers list-schedulers                 scheduler class names and aliases\n"
    "       cdiffusers help COMMAND | --help | --version\n"
    "\n"
    "generate options:\n"
    "  -m, --model DIR            diffusers model folder (model_index.json); default: the bundled model\n"
    "  -p, --prompt TEXT          prompt (repeat for several prompts; also accepted as plain arguments)\n"
    "  -n, --negative-prompt TEXT negative prompt (one for all prompts, or one per prompt)\n"
    "      --steps N              denoising steps (default 50)\n"
    "  -g, --guidance-scale X     classifier-free guidance scale (alias --cfg-scale; default 7.5; <= 1 disables)\n"
    "  -s, --scheduler NAME       scheduler class or alias (see list-schedulers; default: the model's)\n"
    "      --karras               use Karras sigmas (use_karras_sigmas=true)\n"
    "      --scheduler-config JSON  extra scheduler options, e.g. '{\"timestep_spacing\": \"trailing\"}'\n"
    "      --seed N               one torch CPU generator for the whole batch\n"
    "      --seeds LIST           one generator per image: 0,1,2 or 0-7 or 0..7\n"
    "  -b, --batch N              images per prompt (num_images_per_prompt, default 1)\n"
    "  -H, --height N, -W, --width N   image size (multiples of 8; default: the model's)\n"
    "      --clip-skip K          use the text encoder's output K layers before the last\n"
    "      --vae DIR              use another VAE folder (e.g. sd-vae-ft-mse)\n"
    "      --variant fp16         read the *.fp16.safetensors weight files\n"
    "      --dtype fp32|fp16|bf16 weights in memory: fp32; fp16 (widened to fp32 in the kernels);\n"
    "                             bf16 (bf16 matrix products with fp32 accumulation)\n"
    "  -t, --threads N            worker threads (default: all cores)\n"
    "  -o, --output PATH          PNG file (default output.png); several images: PATH-0.png, ... or a\n"
    "                             printf pattern such as img_%02d.png\n"
    "      --grid RxC             write all images as one grid of R rows and C columns\n"
    "      --latents FILE         initial latents from a safetensors file (tensor 'latents')\n"
    "      --output-tensor FILE   also write the float images [B,H,W,3] in [0,1] (tensor 'image')\n"
    "      --vae-tiling           decode tile by tile with blended seams (large images in little memory)\n"
    "      --vae-slicing          decode the batch one image at a time\n"
    "      --attention-slicing N|auto  attention in slices of N query rows (auto: 64)\n"
    "      --low-memory           all of the above\n"
    "  -q, --quiet                no progress output\n"
    "\n"
    "run-component: --component text_encoder|unet|vae_decoder|vae_encoder, --input/--output safetensors,\n"
    "  optional --variant, --vae, --dtype, --threads. See docs/CLI.md.\n";

void cli_print_help(const char *topic) {
    (void)topic;
    fputs(main_help, stdout);
}
