// Optimiser kernels for training on CUDA, launched from src/nn/gpu_cuda.rs.
//
// An AdamW step written with tensor ops costs about ten launches per trainable tensor; LoRA
// on every linear of a 28-layer decoder has ~400 such tensors, so the optimiser alone was
// thousands of tiny launches per step. Here each tensor takes three: two moment updates and
// the parameter update. Arithmetic is f32 with explicitly rounded operations (the build
// uses --use_fast_math), so results match the same formula written with candle's ops.

#define GRID_STRIDE(i, n)                                                          \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

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
