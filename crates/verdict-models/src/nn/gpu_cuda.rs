//! Launches of `kernels/inference.cu` as candle custom ops (forward only: callers check that
//! no input tracks gradients). Shapes and layouts are validated by the caller in `gpu.rs`.
//!
//! Each op is one [`Launch`] over its operands in order; [`custom_op!`] turns it into the
//! candle custom-op traits for the operand counts it takes (no CPU implementation: `gpu.rs`
//! only calls these on CUDA tensors).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor,
};
use half::bf16;

use super::RopeTables;
use crate::Result;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/inference.ptx"));
const MODULE: &str = "verdict_inference";
const THREADS: u32 = 256;

type Operand<'a> = (&'a CudaStorage, &'a Layout);
type Launched = candle_core::Result<(CudaStorage, Shape)>;

/// One kernel launch over the op's tensor operands, in the order the op is applied.
trait Launch {
    const NAME: &'static str;
    fn launch(&self, operands: &[Operand<'_>]) -> Launched;
}

/// Implements candle's `CustomOpN` for a [`Launch`] type, for each listed operand count.
macro_rules! custom_op {
    ($ty:ty: $($arity:tt),+) => { $(custom_op!(@impl $ty, $arity);)+ };
    (@impl $ty:ty, 1) => {
        impl CustomOp1 for $ty {
            fn name(&self) -> &'static str {
                <$ty as Launch>::NAME
            }
            fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
                Err(cuda_only(<$ty as Launch>::NAME))
            }
            fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout) -> Launched {
                self.launch(&[(s1, l1)])
            }
        }
    };
    (@impl $ty:ty, 2) => {
        impl CustomOp2 for $ty {
            fn name(&self) -> &'static str {
                <$ty as Launch>::NAME
            }
            fn cpu_fwd(
                &self,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
            ) -> candle_core::Result<(CpuStorage, Shape)> {
                Err(cuda_only(<$ty as Launch>::NAME))
            }
            fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Launched {
                self.launch(&[(s1, l1), (s2, l2)])
            }
        }
    };
    (@impl $ty:ty, 3) => {
        impl CustomOp3 for $ty {
            fn name(&self) -> &'static str {
                <$ty as Launch>::NAME
            }
            fn cpu_fwd(
                &self,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
            ) -> candle_core::Result<(CpuStorage, Shape)> {
                Err(cuda_only(<$ty as Launch>::NAME))
            }
            fn cuda_fwd(
                &self,
                s1: &CudaStorage,
                l1: &Layout,
                s2: &CudaStorage,
                l2: &Layout,
                s3: &CudaStorage,
                l3: &Layout,
            ) -> Launched {
                self.launch(&[(s1, l1), (s2, l2), (s3, l3)])
            }
        }
    };
}

fn cuda_only(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name} runs on CUDA devices only"))
}

fn as_i32(value: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(value).map_err(|_| candle_core::Error::Msg(format!("{what} {value} exceeds i32")))
}

/// The operand's elements from its first one on.
fn view<'a, T: CudaDType>(operand: &Operand<'a>) -> candle_core::Result<CudaView<'a, T>> {
    let (storage, layout) = *operand;
    Ok(storage.as_cuda_slice::<T>()?.slice(layout.start_offset()..))
}

/// Grid-stride kernels: one thread per work item, up to 2^20 blocks.
fn grid(work_items: usize) -> LaunchConfig {
    let blocks = work_items.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Row kernels: one warp per row.
fn row_grid(rows: usize) -> LaunchConfig {
    let rows_per_block = (THREADS / 32) as usize;
    LaunchConfig {
        grid_dim: (rows.div_ceil(rows_per_block) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Operands: `xs`, `bias`.
struct BiasAdd;

impl Launch for BiasAdd {
    const NAME: &'static str = "bias_add_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let dev = storage.device().clone();
        let n = layout.shape().elem_count();
        let cols = operands[1].1.shape().elem_count();
        let (x, b) = (view::<bf16>(&operands[0])?, view::<bf16>(&operands[1])?);
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func(Self::NAME, MODULE, PTX)?;
        let rows = (n / cols) as i64;
        let cols = as_i32(cols, "bias length")?;
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&b);
        builder.arg(&out);
        builder.arg(&rows);
        builder.arg(&cols);
        // SAFETY: argument list matches the kernel's signature; sizes checked by the caller.
        unsafe { builder.launch(grid(n / 8)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            layout.shape().clone(),
        ))
    }
}

custom_op!(BiasAdd: 2);

pub fn bias_add(xs: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    Ok(Some(xs.apply_op2_no_bwd(bias, &BiasAdd)?))
}

/// Operands: `xs`, then optionally the rotary `cos` and `sin` tables.
struct GatherHeads {
    rep: usize,
    scale: f32,
    row_per_i0: usize,
    row_per_i2: usize,
}

impl Launch for GatherHeads {
    const NAME: &'static str = "gather_heads_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let (n0, heads, n2, d) = layout.shape().dims4()?;
        let n1 = heads * self.rep;
        let stride = layout.stride();
        let dev = storage.device().clone();
        let x = view::<bf16>(&operands[0])?;
        let angles = match operands.get(1..3) {
            Some([cos, sin]) => Some((view::<f32>(cos)?, view::<f32>(sin)?)),
            _ => None,
        };
        let n = n0 * n1 * n2 * d;
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func(Self::NAME, MODULE, PTX)?;
        let null = 0u64;
        let (n0_, n1_, n2_, d_) = (
            as_i32(n0, "rows")?,
            as_i32(n1, "heads")?,
            as_i32(n2, "positions")?,
            as_i32(d, "head size")?,
        );
        let (st0, st1, st2) = (stride[0] as i64, stride[1] as i64, stride[2] as i64);
        let rep = as_i32(self.rep, "repeat")?;
        let (c0, c2) = (self.row_per_i0 as i64, self.row_per_i2 as i64);
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&out);
        match &angles {
            Some((cos, sin)) => {
                builder.arg(cos);
                builder.arg(sin);
            }
            None => {
                builder.arg(&null);
                builder.arg(&null);
            }
        }
        builder.arg(&n0_);
        builder.arg(&n1_);
        builder.arg(&n2_);
        builder.arg(&d_);
        builder.arg(&st0);
        builder.arg(&st1);
        builder.arg(&st2);
        builder.arg(&rep);
        builder.arg(&self.scale);
        builder.arg(&c0);
        builder.arg(&c2);
        // SAFETY: argument list matches the kernel's signature; layouts checked by the caller.
        unsafe { builder.launch(grid(n / 16)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((n0, n1, n2, d)),
        ))
    }
}

custom_op!(GatherHeads: 1, 3);

pub fn gather_heads(
    xs: &Tensor,
    rep: usize,
    scale: f32,
    rope: Option<RopeTables<'_>>,
) -> Result<Option<Tensor>> {
    let op = GatherHeads {
        rep,
        scale,
        row_per_i0: rope.map_or(0, |r| r.row_per_i0),
        row_per_i2: rope.map_or(0, |r| r.row_per_i2),
    };
    Ok(Some(match rope {
        Some(tables) => xs.apply_op3_no_bwd(tables.cos, tables.sin, &op)?,
        None => xs.apply_op1_no_bwd(&op)?,
    }))
}

/// Operands: `scores`, then optionally the f32 `mask`.
struct Softmax {
    scale: f32,
}

impl Launch for Softmax {
    const NAME: &'static str = "scaled_masked_softmax_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let (batch, heads, q_len, k_len) = layout.shape().dims4()?;
        let dev = storage.device().clone();
        let x = view::<bf16>(&operands[0])?;
        let (mask, mask_batched) = match operands.get(1) {
            Some(mask) => (
                Some(view::<f32>(mask)?),
                i32::from(mask.1.dims()[0] == batch && batch > 1),
            ),
            None => (None, 0),
        };
        let rows = batch * heads * q_len;
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(rows * k_len)? };
        let func = dev.get_or_load_custom_func(Self::NAME, MODULE, PTX)?;
        let null = 0u64;
        let rows_ = rows as i64;
        let (k_, heads_, q_) = (
            as_i32(k_len, "keys")?,
            as_i32(heads, "heads")?,
            as_i32(q_len, "queries")?,
        );
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&out);
        match &mask {
            Some(m) => builder.arg(m),
            None => builder.arg(&null),
        };
        builder.arg(&rows_);
        builder.arg(&k_);
        builder.arg(&heads_);
        builder.arg(&q_);
        builder.arg(&mask_batched);
        builder.arg(&self.scale);
        // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
        unsafe { builder.launch(row_grid(rows)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            layout.shape().clone(),
        ))
    }
}

custom_op!(Softmax: 1, 2);

pub fn scaled_masked_softmax(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> Result<Option<Tensor>> {
    let op = Softmax { scale };
    Ok(Some(match mask {
        Some(mask) => scores.apply_op2_no_bwd(mask, &op)?,
        None => scores.apply_op1_no_bwd(&op)?,
    }))
}

/// Row norms. Operands: `xs`, `params` (the weight, or `[weight; bias]` for a layer norm), or
/// `xs`, `residual`, `params`; with a residual the output stacks `[normed, xs + residual]`
/// along a new first dimension (a custom op has one output).
struct Norm {
    layer: bool,
    eps: f32,
}

impl Launch for Norm {
    const NAME: &'static str = "norm_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let (residual, params) = match operands {
            [_, params] => (None, params),
            [_, residual, params] => (Some(residual), params),
            _ => return Err(candle_core::Error::Msg("norm takes 2 or 3 operands".into())),
        };
        let dims = layout.dims();
        let cols = dims[dims.len() - 1];
        let n = layout.shape().elem_count();
        let rows = n / cols;
        let dev = storage.device().clone();
        let x = view::<bf16>(&operands[0])?;
        let res = residual.map(view::<bf16>).transpose()?;
        let p = view::<bf16>(params)?;
        let out_len = if residual.is_some() { 2 * n } else { n };
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(out_len)? };
        let name = if self.layer {
            "layer_norm_bf16"
        } else {
            "rms_norm_bf16"
        };
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        let null = 0u64;
        let rows_ = rows as i64;
        let cols_ = as_i32(cols, "row length")?;
        let normed = out.slice(..n);
        let sum = out.slice(n..);
        let mut builder = func.builder();
        builder.arg(&x);
        match &res {
            Some(r) => builder.arg(r),
            None => builder.arg(&null),
        };
        // Layer norms get `[weight; bias]` stacked: weight first, bias `cols` further.
        let weight = p.slice(..cols);
        builder.arg(&weight);
        let bias;
        if self.layer {
            bias = p.slice(cols..);
            builder.arg(&bias);
        }
        builder.arg(&normed);
        if residual.is_some() {
            builder.arg(&sum);
        } else {
            builder.arg(&null);
        }
        builder.arg(&rows_);
        builder.arg(&cols_);
        builder.arg(&self.eps);
        // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
        unsafe { builder.launch(row_grid(rows)) }.w()?;
        drop(builder);
        let shape = if residual.is_some() {
            let mut stacked = vec![2];
            stacked.extend_from_slice(dims);
            Shape::from(stacked)
        } else {
            layout.shape().clone()
        };
        Ok((CudaStorage::wrap_cuda_slice(out, dev), shape))
    }
}

custom_op!(Norm: 2, 3);

/// `params`: the weight, or `[weight; bias]` concatenated for layer norms.
pub fn norm(
    xs: &Tensor,
    residual: Option<&Tensor>,
    params: &Tensor,
    layer: bool,
    eps: f32,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let op = Norm { layer, eps };
    Ok(Some(match residual {
        None => (xs.apply_op2_no_bwd(params, &op)?, None),
        Some(residual) => {
            let stacked = xs.apply_op3_no_bwd(residual, params, &op)?;
            (stacked.get(0)?, Some(stacked.get(1)?))
        }
    }))
}

/// Element-wise activations. Operands: `gate`, then `up` (SwiGLU) or the bias (bias + GELU).
struct Activation {
    kind: i32,
    /// Bias length for the bias + GELU kind.
    cols: i32,
}

impl Launch for Activation {
    const NAME: &'static str = "activation_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let dev = storage.device().clone();
        let n = layout.shape().elem_count();
        let g = view::<bf16>(&operands[0])?;
        let u = operands.get(1).map(view::<bf16>).transpose()?;
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func(Self::NAME, MODULE, PTX)?;
        let null = 0u64;
        let n_ = n as i64;
        let mut builder = func.builder();
        builder.arg(&g);
        match &u {
            Some(u) => builder.arg(u),
            None => builder.arg(&null),
        };
        builder.arg(&out);
        builder.arg(&n_);
        builder.arg(&self.kind);
        builder.arg(&self.cols);
        // SAFETY: argument list matches the kernel's signature; sizes checked by the caller.
        unsafe { builder.launch(grid(n / 8)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            layout.shape().clone(),
        ))
    }
}

custom_op!(Activation: 1, 2);

pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Option<Tensor>> {
    let op = Activation { kind: 0, cols: 0 };
    Ok(Some(gate.apply_op2_no_bwd(up, &op)?))
}

pub fn gelu_tanh(xs: &Tensor) -> Result<Option<Tensor>> {
    let op = Activation { kind: 1, cols: 0 };
    Ok(Some(xs.apply_op1_no_bwd(&op)?))
}

pub fn bias_gelu_tanh(xs: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    let cols = as_i32(bias.elem_count(), "bias length")?;
    let op = Activation { kind: 2, cols };
    Ok(Some(xs.apply_op2_no_bwd(bias, &op)?))
}

pub fn memory_in_use(device: &candle_core::Device) -> Result<Option<u64>> {
    use candle_core::cuda_backend::cudarc::driver::result;
    let candle_core::Device::Cuda(cuda) = device else {
        return Ok(None);
    };
    device.synchronize()?;
    let context = cuda.cuda_stream().context().clone();
    context.bind_to_thread().w()?;
    // SAFETY: the device handle comes from a live context bound to this thread; trimming the
    // default pool only releases blocks that no allocation holds.
    unsafe {
        let pool = result::device::get_default_mem_pool(context.cu_device()).w()?;
        result::mem_pool::trim_to(pool, 0).w()?;
    }
    let (free, total) = context.mem_get_info().w()?;
    Ok(Some((total - free) as u64))
}

const TRAINING_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/training.ptx"));
const TRAINING_MODULE: &str = "verdict_training";

/// `dst = beta * dst + (1 - beta) * g` (or `g^2`), in place.
struct AdamMoment {
    beta: f32,
    one_minus_beta: f32,
    square: bool,
}

impl candle_core::InplaceOp2 for AdamMoment {
    fn name(&self) -> &'static str {
        "adam_moment_f32"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        Err(cuda_only(self.name()))
    }

    fn cuda_fwd(
        &self,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        g: &CudaStorage,
        g_l: &Layout,
    ) -> candle_core::Result<()> {
        let dev = dst.device().clone();
        let n = dst_l.shape().elem_count() as i64;
        let g = view::<f32>(&(g, g_l))?;
        let mut out = dst
            .as_cuda_slice_mut::<f32>()?
            .slice_mut(dst_l.start_offset()..);
        let func = dev.get_or_load_custom_func(self.name(), TRAINING_MODULE, TRAINING_PTX)?;
        let square = i32::from(self.square);
        let mut builder = func.builder();
        builder.arg(&mut out);
        builder.arg(&g);
        builder.arg(&n);
        builder.arg(&self.beta);
        builder.arg(&self.one_minus_beta);
        builder.arg(&square);
        // SAFETY: argument list matches the kernel's signature; lengths checked by the caller.
        unsafe { builder.launch(grid(n as usize)) }.w()?;
        Ok(())
    }
}

/// The parameter update of AdamW, in place, from the already updated moments.
struct AdamWApply {
    decay: f32,
    inv_bias1: f32,
    inv_bias2: f32,
    eps: f32,
    lr: f32,
}

impl candle_core::InplaceOp3 for AdamWApply {
    fn name(&self) -> &'static str {
        "adamw_apply_f32"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        Err(cuda_only(self.name()))
    }

    fn cuda_fwd(
        &self,
        p: &mut CudaStorage,
        p_l: &Layout,
        m: &CudaStorage,
        m_l: &Layout,
        v: &CudaStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        let dev = p.device().clone();
        let n = p_l.shape().elem_count() as i64;
        let (m, v) = (view::<f32>(&(m, m_l))?, view::<f32>(&(v, v_l))?);
        let mut out = p
            .as_cuda_slice_mut::<f32>()?
            .slice_mut(p_l.start_offset()..);
        let func = dev.get_or_load_custom_func(self.name(), TRAINING_MODULE, TRAINING_PTX)?;
        let mut builder = func.builder();
        builder.arg(&mut out);
        builder.arg(&m);
        builder.arg(&v);
        builder.arg(&n);
        builder.arg(&self.decay);
        builder.arg(&self.inv_bias1);
        builder.arg(&self.inv_bias2);
        builder.arg(&self.eps);
        builder.arg(&self.lr);
        // SAFETY: argument list matches the kernel's signature; lengths checked by the caller.
        unsafe { builder.launch(grid(n as usize)) }.w()?;
        Ok(())
    }
}

pub fn adamw_update(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: &super::AdamWStep,
) -> Result<Option<()>> {
    let (b1, b2) = (step.beta1 as f32, step.beta2 as f32);
    let moment = |dst: &Tensor, beta: f32, one_minus: f64, square: bool| {
        dst.inplace_op2(
            grad,
            &AdamMoment {
                beta,
                one_minus_beta: one_minus as f32,
                square,
            },
        )
    };
    moment(m, b1, 1.0 - step.beta1, false)?;
    moment(v, b2, 1.0 - step.beta2, true)?;
    let t = step.step as i32;
    param.inplace_op3(
        m,
        v,
        &AdamWApply {
            decay: (1.0 - step.lr * step.weight_decay) as f32,
            inv_bias1: (1.0 / (1.0 - step.beta1.powi(t))) as f32,
            inv_bias2: (1.0 / (1.0 - step.beta2.powi(t))) as f32,
            eps: step.eps as f32,
            lr: step.lr as f32,
        },
    )?;
    Ok(Some(()))
}

/// A warp-per-row kernel of `training.cu` over bf16 operands shaped `(.., cols)` like the
/// first: `kernel(operands.., out, rows, cols, param)`, `out` shaped like the first operand.
fn launch_rows(name: &str, operands: &[Operand<'_>], param: f32) -> Launched {
    let (storage, layout) = operands[0];
    let dev = storage.device().clone();
    let n = layout.shape().elem_count();
    let cols = layout.shape().dims().last().copied().unwrap_or(1).max(1);
    let inputs = operands
        .iter()
        .map(view::<bf16>)
        .collect::<candle_core::Result<Vec<_>>>()?;
    // SAFETY: every element is written by the kernel below.
    let out = unsafe { dev.alloc::<bf16>(n)? };
    let func = dev.get_or_load_custom_func(name, TRAINING_MODULE, TRAINING_PTX)?;
    let rows = (n / cols) as i64;
    let cols = as_i32(cols, "row width")?;
    let mut builder = func.builder();
    for input in &inputs {
        builder.arg(input);
    }
    builder.arg(&out);
    builder.arg(&rows);
    builder.arg(&cols);
    builder.arg(&param);
    // SAFETY: argument list matches the kernels' signatures; shapes checked by the caller.
    unsafe { builder.launch(row_grid(rows as usize)) }.w()?;
    Ok((
        CudaStorage::wrap_cuda_slice(out, dev),
        layout.shape().clone(),
    ))
}

/// Operands: `x`, `weight`, `grad`.
struct RmsNormBackward {
    eps: f32,
}

impl Launch for RmsNormBackward {
    const NAME: &'static str = "rms_norm_backward_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        launch_rows(Self::NAME, operands, self.eps)
    }
}

custom_op!(RmsNormBackward: 3);

pub fn rms_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    eps: f32,
) -> Result<Option<Tensor>> {
    Ok(Some(x.apply_op3_no_bwd(
        weight,
        grad,
        &RmsNormBackward { eps },
    )?))
}

/// Operands: `weights`, `grad`.
struct SoftmaxBackward {
    scale: f32,
}

impl Launch for SoftmaxBackward {
    const NAME: &'static str = "softmax_backward_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        launch_rows(Self::NAME, operands, self.scale)
    }
}

custom_op!(SoftmaxBackward: 2);

pub fn softmax_backward(weights: &Tensor, grad: &Tensor, scale: f32) -> Result<Option<Tensor>> {
    Ok(Some(
        weights.apply_op2_no_bwd(grad, &SoftmaxBackward { scale })?,
    ))
}

/// Threads per row of the cross-entropy row kernel (`CE_THREADS` in training.cu).
const CE_THREADS: u32 = 512;

/// `(loss, lse)` of every row, f32: launches `cross_entropy_rows_bf16`.
fn cross_entropy_launch(
    logits: &Operand<'_>,
    targets: &Operand<'_>,
) -> candle_core::Result<(CudaSlice<f32>, CudaSlice<f32>)> {
    let (storage, layout) = *logits;
    let dev = storage.device().clone();
    let (rows, cols) = layout.shape().dims2()?;
    let (x, t) = (view::<bf16>(logits)?, view::<u32>(targets)?);
    // SAFETY: the kernel writes one loss and one lse per row.
    let loss = unsafe { dev.alloc::<f32>(rows)? };
    let lse = unsafe { dev.alloc::<f32>(rows)? };
    let func =
        dev.get_or_load_custom_func("cross_entropy_rows_bf16", TRAINING_MODULE, TRAINING_PTX)?;
    let cols = as_i32(cols, "vocabulary")?;
    let mut builder = func.builder();
    builder.arg(&x);
    builder.arg(&t);
    builder.arg(&loss);
    builder.arg(&lse);
    builder.arg(&cols);
    let config = LaunchConfig {
        grid_dim: (
            u32::try_from(rows)
                .map_err(|_| candle_core::Error::Msg(format!("{rows} rows exceed u32")))?,
            1,
            1,
        ),
        block_dim: (CE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
    unsafe { builder.launch(config) }.w()?;
    Ok((loss, lse))
}

/// Operands: `logits`, `targets`.
struct CrossEntropyRows;

impl Launch for CrossEntropyRows {
    const NAME: &'static str = "cross_entropy_rows_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let dev = operands[0].0.device().clone();
        let rows = operands[0].1.shape().dims2()?.0;
        let (loss, _) = cross_entropy_launch(&operands[0], &operands[1])?;
        Ok((CudaStorage::wrap_cuda_slice(loss, dev), Shape::from(rows)))
    }
}

custom_op!(CrossEntropyRows: 2);

pub fn cross_entropy_rows(logits: &Tensor, targets: &Tensor) -> Result<Option<Tensor>> {
    Ok(Some(logits.apply_op2_no_bwd(targets, &CrossEntropyRows)?))
}

/// Operands: `logits`, `targets`, `scale`.
struct CrossEntropyGrad;

impl Launch for CrossEntropyGrad {
    const NAME: &'static str = "cross_entropy_grad_bf16";

    fn launch(&self, operands: &[Operand<'_>]) -> Launched {
        let (storage, layout) = operands[0];
        let dev = storage.device().clone();
        let (rows, cols) = layout.shape().dims2()?;
        // The row statistics again: one more read of the logits, no state kept between the
        // forward and backward passes.
        let (_, lse) = cross_entropy_launch(&operands[0], &operands[1])?;
        let (x, t, scale) = (
            view::<bf16>(&operands[0])?,
            view::<u32>(&operands[1])?,
            view::<f32>(&operands[2])?,
        );
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(rows * cols)? };
        let func = dev.get_or_load_custom_func(Self::NAME, TRAINING_MODULE, TRAINING_PTX)?;
        let (rows_, cols_) = (rows as i64, as_i32(cols, "vocabulary")?);
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(&t);
        builder.arg(&lse);
        builder.arg(&scale);
        builder.arg(&out);
        builder.arg(&rows_);
        builder.arg(&cols_);
        // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
        unsafe { builder.launch(grid(rows * cols / 8)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            layout.shape().clone(),
        ))
    }
}

custom_op!(CrossEntropyGrad: 3);

pub fn cross_entropy_grad(
    logits: &Tensor,
    targets: &Tensor,
    scale: &Tensor,
) -> Result<Option<Tensor>> {
    Ok(Some(logits.apply_op3_no_bwd(
        targets,
        scale,
        &CrossEntropyGrad,
    )?))
}

pub fn memory_peak(device: &candle_core::Device) -> Result<Option<u64>> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    let candle_core::Device::Cuda(cuda) = device else {
        return Ok(None);
    };
    device.synchronize()?;
    let context = cuda.cuda_stream().context().clone();
    context.bind_to_thread().w()?;
    let mut high: u64 = 0;
    // SAFETY: the device handle comes from a live context bound to this thread, and the
    // attribute's value is a 64-bit unsigned integer, as `high` is.
    unsafe {
        let pool = result::device::get_default_mem_pool(context.cu_device()).w()?;
        result::mem_pool::get_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            (&mut high as *mut u64).cast(),
        )
        .w()?;
    }
    Ok(Some(high))
}
