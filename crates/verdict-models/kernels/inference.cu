// Inference kernels for half-precision models on NVIDIA GPUs.
//
// candle's generic binary and copy kernels compute a strided index per element with 64-bit
// divisions; for a bias broadcast over rows or a head transpose that runs at a tenth of the
// card's memory bandwidth, and in a Qwen3-VL forward those launches took more time than all
// matrix products together. Each kernel here does one such job with 16-byte accesses and a
// single index split per 8 elements. Arithmetic is in f32, results rounded to bf16 once.

#include "bf16.cuh"

// out[r, c] = x[r, c] + bias[c]; x, out contiguous (rows, cols), cols % 8 == 0, 16-byte aligned.
extern "C" __global__ void bias_add_bf16(const __nv_bfloat16 *__restrict__ x,
                                         const __nv_bfloat16 *__restrict__ bias,
                                         __nv_bfloat16 *__restrict__ out, long long rows,
                                         int cols) {
    const int chunks = cols / 8;
    const long long total = rows * chunks;
    GRID_STRIDE(t, total) {
        const int c = (int)(t % chunks);
        float a[8], b[8];
        unpack8(reinterpret_cast<const uint4 *>(x)[t], a);
        unpack8(reinterpret_cast<const uint4 *>(bias)[c], b);
#pragma unroll
        for (int j = 0; j < 8; j++) a[j] += b[j];
        reinterpret_cast<uint4 *>(out)[t] = pack8(a);
    }
}

// Gathers attention heads into a contiguous (n0, n1, n2, d) tensor:
//   out[i0, i1, i2, :] = rope(in[i0 * st0 + (i1 / rep) * st1 + i2 * st2 + :]) * scale
// `rep` repeats key/value heads for grouped-query attention. With `cos`/`sin` (f32 tables of
// d / 2 angles per row, row = i0 * c0 + i2 * c2) the rotate-half rotary embedding is applied in
// f32 before the single rounding. One thread moves 8 elements of each half of a row.
// Requires d % 16 == 0 and every stride and the input offset a multiple of 8.
extern "C" __global__ void gather_heads_bf16(const __nv_bfloat16 *__restrict__ in,
                                             __nv_bfloat16 *__restrict__ out,
                                             const float *__restrict__ cos,
                                             const float *__restrict__ sin, int n0, int n1,
                                             int n2, int d, long long st0, long long st1,
                                             long long st2, int rep, float scale, long long c0,
                                             long long c2) {
    const int half = d / 2;
    const int chunks = half / 8;
    const long long total = (long long)n0 * n1 * n2 * chunks;
    GRID_STRIDE(t, total) {
        const int c = (int)(t % chunks);
        const long long row = t / chunks;
        const int i2 = (int)(row % n2);
        const long long r = row / n2;
        const int i1 = (int)(r % n1);
        const int i0 = (int)(r / n1);
        const __nv_bfloat16 *src = in + i0 * st0 + (long long)(i1 / rep) * st1 + i2 * st2 + c * 8;
        float a[8], b[8];
        unpack8(*reinterpret_cast<const uint4 *>(src), a);
        unpack8(*reinterpret_cast<const uint4 *>(src + half), b);
        if (cos != nullptr) {
            const long long at = (i0 * c0 + i2 * c2) * half + c * 8;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float cj = cos[at + j], sj = sin[at + j];
                const float x1 = a[j], x2 = b[j];
                a[j] = x1 * cj - x2 * sj;
                b[j] = x2 * cj + x1 * sj;
            }
        }
        if (scale != 1.0f) {
#pragma unroll
            for (int j = 0; j < 8; j++) {
                a[j] *= scale;
                b[j] *= scale;
            }
        }
        __nv_bfloat16 *dst = out + row * d + c * 8;
        *reinterpret_cast<uint4 *>(dst) = pack8(a);
        *reinterpret_cast<uint4 *>(dst + half) = pack8(b);
    }
}

// Attention probabilities: out[row, :] = softmax(x[row, :] * scale + mask[m(row), :]) with
// rows = batch * heads * q_len of a contiguous score tensor, the optional additive f32 mask
// shaped (batch or 1, q_len, k) and shared by the heads. One warp per row, f32 throughout.
extern "C" __global__ void scaled_masked_softmax_bf16(const __nv_bfloat16 *__restrict__ x,
                                                      __nv_bfloat16 *__restrict__ out,
                                                      const float *__restrict__ mask,
                                                      long long rows, int k, int heads,
                                                      int q_len, int mask_batched,
                                                      float scale) {
    const int warps = blockDim.x / 32;
    const long long row = (long long)blockIdx.x * warps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const __nv_bfloat16 *xr = x + row * k;
    const float *mr = nullptr;
    if (mask != nullptr) {
        const long long q = row % q_len;
        const long long b = mask_batched ? row / ((long long)q_len * heads) : 0;
        mr = mask + (b * q_len + q) * k;
    }
    float m = -INFINITY;
    for (int j = lane; j < k; j += 32) {
        const float v = __bfloat162float(xr[j]) * scale + (mr ? mr[j] : 0.0f);
        m = fmaxf(m, v);
    }
    m = warp_max(m);
    // A fully masked row (never produced by the mask builder) would give NaN; keep it finite.
    const float shift = m == -INFINITY ? 0.0f : m;
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) {
        const float v = __bfloat162float(xr[j]) * scale + (mr ? mr[j] : 0.0f);
        s += __expf(v - shift);
    }
    s = warp_sum(s);
    const float inv = s > 0.0f ? 1.0f / s : 0.0f;
    __nv_bfloat16 *orow = out + row * k;
    for (int j = lane; j < k; j += 32) {
        const float v = __bfloat162float(xr[j]) * scale + (mr ? mr[j] : 0.0f);
        orow[j] = __float2bfloat16(__expf(v - shift) * inv);
    }
}

// Row norms, optionally fused with the residual add before them. One warp per row, 8
// elements per lane access; the row is re-read from cache for the statistics passes.
// With `res`, the row is s = bf16(x + res) (the residual stream, rounded as the reference
// rounds it), written to `sum_out`, and normalised. cols % 8 == 0, 16-byte aligned rows.
__device__ __forceinline__ const __nv_bfloat16 *norm_input(const __nv_bfloat16 *x,
                                                           const __nv_bfloat16 *res,
                                                           __nv_bfloat16 *sum_out, long long row,
                                                           int cols, int lane) {
    const __nv_bfloat16 *xr = x + row * cols;
    if (res == nullptr) return xr;
    const __nv_bfloat16 *rr = res + row * cols;
    __nv_bfloat16 *sr = sum_out + row * cols;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8], b[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        unpack8(*reinterpret_cast<const uint4 *>(rr + j), b);
#pragma unroll
        for (int t = 0; t < 8; t++) a[t] += b[t];
        *reinterpret_cast<uint4 *>(sr + j) = pack8(a);
    }
    __syncwarp();
    return sr;
}

// Qwen/Llama RMSNorm as the reference computes it: n = bf16(x / rms(x)) in f32, then
// out = bf16(n * weight).
extern "C" __global__ void rms_norm_bf16(const __nv_bfloat16 *__restrict__ x,
                                         const __nv_bfloat16 *res,
                                         const __nv_bfloat16 *__restrict__ weight,
                                         __nv_bfloat16 *out, __nv_bfloat16 *sum_out,
                                         long long rows, int cols, float eps) {
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const __nv_bfloat16 *xr = norm_input(x, res, sum_out, row, cols, lane);
    float ss = 0.0f;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
#pragma unroll
        for (int t = 0; t < 8; t++) ss += a[t] * a[t];
    }
    ss = warp_sum(ss);
    const float inv = rsqrtf(ss / cols + eps);
    __nv_bfloat16 *orow = out + row * cols;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8], w[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        unpack8(*reinterpret_cast<const uint4 *>(weight + j), w);
#pragma unroll
        for (int t = 0; t < 8; t++) a[t] = __bfloat162float(__float2bfloat16(a[t] * inv)) * w[t];
        *reinterpret_cast<uint4 *>(orow + j) = pack8(a);
    }
}

// LayerNorm with f32 statistics (mean, then centred variance) and one final rounding.
extern "C" __global__ void layer_norm_bf16(const __nv_bfloat16 *__restrict__ x,
                                           const __nv_bfloat16 *res,
                                           const __nv_bfloat16 *__restrict__ weight,
                                           const __nv_bfloat16 *__restrict__ bias,
                                           __nv_bfloat16 *out, __nv_bfloat16 *sum_out,
                                           long long rows, int cols, float eps) {
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const __nv_bfloat16 *xr = norm_input(x, res, sum_out, row, cols, lane);
    float s = 0.0f;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
#pragma unroll
        for (int t = 0; t < 8; t++) s += a[t];
    }
    const float mean = warp_sum(s) / cols;
    float v = 0.0f;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
#pragma unroll
        for (int t = 0; t < 8; t++) v += (a[t] - mean) * (a[t] - mean);
    }
    const float inv = rsqrtf(warp_sum(v) / cols + eps);
    __nv_bfloat16 *orow = out + row * cols;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8], w[8], b[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        unpack8(*reinterpret_cast<const uint4 *>(weight + j), w);
        unpack8(*reinterpret_cast<const uint4 *>(bias + j), b);
#pragma unroll
        for (int t = 0; t < 8; t++) a[t] = (a[t] - mean) * inv * w[t] + b[t];
        *reinterpret_cast<uint4 *>(orow + j) = pack8(a);
    }
}

// Element-wise activations over contiguous bf16 (n % 8 == 0), rounding as the reference:
// kind 0: SwiGLU, out = bf16(bf16(silu(gate)) * up); kind 1: tanh GELU of `gate` alone;
// kind 2: tanh GELU of bf16(gate + up[col]), `up` a bias of `cols` (cols % 8 == 0).
extern "C" __global__ void activation_bf16(const __nv_bfloat16 *__restrict__ gate,
                                           const __nv_bfloat16 *__restrict__ up,
                                           __nv_bfloat16 *__restrict__ out, long long n,
                                           int kind, int cols) {
    GRID_STRIDE(t, n / 8) {
        float g[8];
        unpack8(reinterpret_cast<const uint4 *>(gate)[t], g);
        if (kind == 2) {
            float b[8];
            unpack8(reinterpret_cast<const uint4 *>(up)[t % (cols / 8)], b);
#pragma unroll
            for (int j = 0; j < 8; j++) g[j] = __bfloat162float(__float2bfloat16(g[j] + b[j]));
        }
        if (kind == 0) {
            float u[8];
            unpack8(reinterpret_cast<const uint4 *>(up)[t], u);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float s = g[j] / (1.0f + expf(-g[j]));
                g[j] = __bfloat162float(__float2bfloat16(s)) * u[j];
            }
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float x = g[j];
                g[j] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
            }
        }
        reinterpret_cast<uint4 *>(out)[t] = pack8(g);
    }
}

