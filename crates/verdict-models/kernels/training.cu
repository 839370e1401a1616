// Training kernels on CUDA, launched from src/nn/gpu_cuda.rs.
//
// Optimiser: an AdamW step written with tensor ops costs about ten launches per trainable
// tensor; LoRA on every linear of a 28-layer decoder has ~400 such tensors, so the optimiser
// alone was thousands of tiny launches per step. Here each tensor takes three: two moment
// updates and the parameter update. Arithmetic is f32 with explicitly rounded operations
// (the build uses --use_fast_math), so results match the same formula written with candle's
// ops.
//
// Backward passes: the RMSNorm gradient, the attention softmax's gradient and the
// cross-entropy over a vocabulary-wide row were several f32 element-wise launches each over
// (rows, width) tensors; in a profiled training step they were about a quarter of the GPU
// time. Here each is one pass per row.

#include "bf16.cuh"

// dst = beta * dst + (1 - beta) * (square ? g * g : g)
extern "C" __global__ void adam_moment_f32(float *__restrict__ dst, const float *__restrict__ g,
                                           long long n, float beta, float one_minus_beta,
                                           int square) {
    GRID_STRIDE(i, n) {
        const float gi = square ? __fmul_rn(g[i], g[i]) : g[i];
        dst[i] = __fadd_rn(__fmul_rn(dst[i], beta), __fmul_rn(gi, one_minus_beta));
    }
}

// p = p * decay - (m * inv_bias1) / (sqrt(v * inv_bias2) + eps) * lr
extern "C" __global__ void adamw_apply_f32(float *__restrict__ p, const float *__restrict__ m,
                                           const float *__restrict__ v, long long n, float decay,
                                           float inv_bias1, float inv_bias2, float eps, float lr) {
    GRID_STRIDE(i, n) {
        const float mhat = __fmul_rn(m[i], inv_bias1);
        const float denom = __fadd_rn(__fsqrt_rn(__fmul_rn(v[i], inv_bias2)), eps);
        const float update = __fmul_rn(__fdiv_rn(mhat, denom), lr);
        p[i] = __fsub_rn(__fmul_rn(p[i], decay), update);
    }
}

// Gradient of out = w * x / sqrt(mean(x^2) + eps) with respect to x, for a frozen w:
// dx = r * (g w - x r^2 mean(g w x)), r = 1 / sqrt(mean(x^2) + eps), in f32, rounded once.
// One warp per row; x, g, dx contiguous (rows, cols), cols % 8 == 0, 16-byte aligned.
extern "C" __global__ void rms_norm_backward_bf16(const __nv_bfloat16 *__restrict__ x,
                                                  const __nv_bfloat16 *__restrict__ weight,
                                                  const __nv_bfloat16 *__restrict__ g,
                                                  __nv_bfloat16 *__restrict__ dx,
                                                  long long rows, int cols, float eps) {
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const __nv_bfloat16 *xr = x + row * cols;
    const __nv_bfloat16 *gr = g + row * cols;
    float ss = 0.0f, dot = 0.0f;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8], b[8], w[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        unpack8(*reinterpret_cast<const uint4 *>(gr + j), b);
        unpack8(*reinterpret_cast<const uint4 *>(weight + j), w);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            ss += a[t] * a[t];
            dot += b[t] * w[t] * a[t];
        }
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    const float r = 1.0f / sqrtf(ss / cols + eps);
    const float coefficient = dot / cols * r * r;
    __nv_bfloat16 *out = dx + row * cols;
    for (int j = lane * 8; j < cols; j += 256) {
        float a[8], b[8], w[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        unpack8(*reinterpret_cast<const uint4 *>(gr + j), b);
        unpack8(*reinterpret_cast<const uint4 *>(weight + j), w);
#pragma unroll
        for (int t = 0; t < 8; t++) a[t] = (b[t] * w[t] - a[t] * coefficient) * r;
        *reinterpret_cast<uint4 *>(out + j) = pack8(a);
    }
}

// Running (max, sum of exp(v - max)) of a softmax denominator, merged without overflow.
struct Denominator {
    float m;
    float s;
};

__device__ __forceinline__ Denominator merge(Denominator a, Denominator b) {
    const float m = fmaxf(a.m, b.m);
    return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// log(sum(exp(row))) of each row, over a block of CE_THREADS threads per row.
#define CE_THREADS 512

__device__ float row_log_sum_exp(const __nv_bfloat16 *__restrict__ xr, int cols) {
    __shared__ Denominator partial[CE_THREADS / 32];
    // A finite start: merging two untouched lanes must not compute exp(-inf + inf).
    Denominator d = {-3.0e38f, 0.0f};
    for (int j = threadIdx.x * 8; j < cols; j += CE_THREADS * 8) {
        float a[8];
        unpack8(*reinterpret_cast<const uint4 *>(xr + j), a);
        float m = a[0];
#pragma unroll
        for (int t = 1; t < 8; t++) m = fmaxf(m, a[t]);
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < 8; t++) s += expf(a[t] - m);
        d = merge(d, {m, s});
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        Denominator other = {__shfl_xor_sync(0xffffffff, d.m, o),
                             __shfl_xor_sync(0xffffffff, d.s, o)};
        d = merge(d, other);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = d;
    __syncthreads();
    if (warp == 0) {
        d = lane < CE_THREADS / 32 ? partial[lane] : Denominator{-3.0e38f, 0.0f};
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            Denominator other = {__shfl_xor_sync(0xffffffff, d.m, o),
                                 __shfl_xor_sync(0xffffffff, d.s, o)};
            d = merge(d, other);
        }
        if (lane == 0) partial[0] = d;
    }
    __syncthreads();
    return partial[0].m + logf(partial[0].s);
}

// Per row: lse[row] = log(sum(exp(logits[row]))), loss[row] = lse[row] - logits[row, target].
// One block of CE_THREADS per row; logits contiguous (rows, cols), cols % 8 == 0, aligned.
// A target outside the row gives a NaN loss.
extern "C" __global__ void cross_entropy_rows_bf16(const __nv_bfloat16 *__restrict__ logits,
                                                   const uint32_t *__restrict__ targets,
                                                   float *__restrict__ loss,
                                                   float *__restrict__ lse, int cols) {
    const long long row = blockIdx.x;
    const __nv_bfloat16 *xr = logits + row * cols;
    const float l = row_log_sum_exp(xr, cols);
    if (threadIdx.x == 0) {
        const uint32_t target = targets[row];
        lse[row] = l;
        loss[row] = target < (uint32_t)cols ? l - __bfloat162float(xr[target]) : __int_as_float(0x7fc00000);
    }
}

// d loss / d logits = scale * (softmax(row) - onehot(target)), from each row's lse; the scale
// (the incoming gradient) is read on the device.
extern "C" __global__ void cross_entropy_grad_bf16(const __nv_bfloat16 *__restrict__ logits,
                                                   const uint32_t *__restrict__ targets,
                                                   const float *__restrict__ lse,
                                                   const float *__restrict__ scale_at,
                                                   __nv_bfloat16 *__restrict__ out,
                                                   long long rows, int cols) {
    const long long groups = rows * (cols / 8);
    const float scale = *scale_at;
    GRID_STRIDE(i, groups) {
        const long long row = i / (cols / 8);
        const int col = (int)(i % (cols / 8)) * 8;
        const long long at = row * cols + col;
        float a[8];
        unpack8(*reinterpret_cast<const uint4 *>(logits + at), a);
        const float l = lse[row];
        const uint32_t target = targets[row];
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float onehot = (uint32_t)(col + t) == target ? 1.0f : 0.0f;
            a[t] = (expf(a[t] - l) - onehot) * scale;
        }
        *reinterpret_cast<uint4 *>(out + at) = pack8(a);
    }
}

// Gradient of softmax(products * scale + mask) with respect to the products, from the
// softmax output w and the incoming gradient g: scale * w * (g - sum(g * w)), in f32,
// rounded once. One warp per row; w, g, out contiguous (rows, cols), any cols.
extern "C" __global__ void softmax_backward_bf16(const __nv_bfloat16 *__restrict__ w,
                                                 const __nv_bfloat16 *__restrict__ g,
                                                 __nv_bfloat16 *__restrict__ out,
                                                 long long rows, int cols, float scale) {
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const __nv_bfloat16 *wr = w + row * cols;
    const __nv_bfloat16 *gr = g + row * cols;
    float dot = 0.0f;
    for (int j = lane; j < cols; j += 32) dot += __bfloat162float(gr[j]) * __bfloat162float(wr[j]);
    dot = warp_sum(dot);
    __nv_bfloat16 *orow = out + row * cols;
    for (int j = lane; j < cols; j += 32) {
        const float wj = __bfloat162float(wr[j]);
        orow[j] = __float2bfloat16((__bfloat162float(gr[j]) - dot) * wj * scale);
    }
}
