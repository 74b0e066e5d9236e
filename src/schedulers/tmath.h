/* Scalar float32 math that reproduces, bit for bit, what diffusers' reference
 * stack computes (torch 1.13 and numpy 1.24 on x86-64 with AVX2/FMA).
 *
 * torch evaluates log/exp/expm1/sin of float32 tensors with SLEEF 3.5's
 * AVX2 kernels (Sleef_logf8_u10 and friends), numpy evaluates log of float32
 * arrays with its own AVX2/AVX-512 rational approximation. Both differ from
 * glibc's logf/expf by an ulp now and then, enough to move a scheduler's
 * timestep across a float32 rounding boundary, so schedulers use these
 * wherever diffusers calls torch.log/exp/expm1 or np.log on float32 data. */
#ifndef CDF_SCHEDULERS_TMATH_H
#define CDF_SCHEDULERS_TMATH_H

float cdf_torch_logf(float x);   /* torch.log   (SLEEF xlogf_u1, FMA)   */
float cdf_torch_expf(float x);   /* torch.exp   (SLEEF xexpf, FMA)      */
float cdf_torch_expm1f(float x); /* torch.expm1 (SLEEF xexpm1f, FMA)    */
float cdf_torch_sinf(float x);   /* torch.sin   (SLEEF xsinf_u1, FMA); |x| < 125, else glibc sinf */
float cdf_numpy_logf(float x);   /* np.log on float32 (simd_log_FLOAT)  */

#endif
