//! Launches of `kernels/inference.cu` as candle custom ops (forward only: callers check that
//! no input tracks gradients). Shapes and layouts are validated by the caller in `gpu.rs`.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor,
};
use half::bf16;

use super::RopeTables;
use crate::Result;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/inference.ptx"));
const MODULE: &str = "verdict_inference";
const THREADS: u32 = 256;

fn grid(work_items: usize) -> LaunchConfig {
    let blocks = work_items.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn cuda_only(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name} runs on CUDA devices only"))
}

fn as_i32(value: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(value).map_err(|_| candle_core::Error::Msg(format!("{what} {value} exceeds i32")))
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "bias_add_bf16"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(self.name()))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xs_layout: &Layout,
        bias: &CudaStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = xs.device().clone();
        let n = xs_layout.shape().elem_count();
        let cols = bias_layout.shape().elem_count();
        let x = xs
            .as_cuda_slice::<bf16>()?
            .slice(xs_layout.start_offset()..);
        let b = bias
            .as_cuda_slice::<bf16>()?
            .slice(bias_layout.start_offset()..);
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func(self.name(), MODULE, PTX)?;
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
            xs_layout.shape().clone(),
        ))
    }
}

pub fn bias_add(xs: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    Ok(Some(xs.apply_op2_no_bwd(bias, &BiasAdd)?))
}

struct GatherHeads {
    rep: usize,
    scale: f32,
    row_per_i0: usize,
    row_per_i2: usize,
}

type Tables<'a> = Option<(&'a CudaStorage, &'a Layout, &'a CudaStorage, &'a Layout)>;

impl GatherHeads {
    fn launch(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
        tables: Tables<'_>,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (n0, heads, n2, d) = layout.shape().dims4()?;
        let n1 = heads * self.rep;
        let stride = layout.stride();
        let dev = xs.device().clone();
        let x = xs.as_cuda_slice::<bf16>()?.slice(layout.start_offset()..);
        let angles = match tables {
            Some((cos, cos_layout, sin, sin_layout)) => Some((
                cos.as_cuda_slice::<f32>()?
                    .slice(cos_layout.start_offset()..),
                sin.as_cuda_slice::<f32>()?
                    .slice(sin_layout.start_offset()..),
            )),
            None => None,
        };
        let n = n0 * n1 * n2 * d;
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func("gather_heads_bf16", MODULE, PTX)?;
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

impl CustomOp1 for GatherHeads {
    fn name(&self) -> &'static str {
        "gather_heads_bf16"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp1::name(self)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch(xs, layout, None)
    }
}

impl CustomOp3 for GatherHeads {
    fn name(&self) -> &'static str {
        "gather_heads_rope_bf16"
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
        Err(cuda_only(CustomOp3::name(self)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
        cos: &CudaStorage,
        cos_layout: &Layout,
        sin: &CudaStorage,
        sin_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch(xs, layout, Some((cos, cos_layout, sin, sin_layout)))
    }
}

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

struct Softmax {
    scale: f32,
}

impl Softmax {
    fn launch(
        &self,
        scores: &CudaStorage,
        layout: &Layout,
        mask: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (batch, heads, q_len, k_len) = layout.shape().dims4()?;
        let dev = scores.device().clone();
        let x = scores
            .as_cuda_slice::<bf16>()?
            .slice(layout.start_offset()..);
        let (mask_view, mask_batched) = match mask {
            Some((m, m_layout)) => (
                Some(m.as_cuda_slice::<f32>()?.slice(m_layout.start_offset()..)),
                i32::from(m_layout.dims()[0] == batch && batch > 1),
            ),
            None => (None, 0),
        };
        let rows = batch * heads * q_len;
        let n = rows * k_len;
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func("scaled_masked_softmax_bf16", MODULE, PTX)?;
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
        match &mask_view {
            Some(m) => builder.arg(m),
            None => builder.arg(&null),
        };
        builder.arg(&rows_);
        builder.arg(&k_);
        builder.arg(&heads_);
        builder.arg(&q_);
        builder.arg(&mask_batched);
        builder.arg(&self.scale);
        // One warp per row.
        let rows_per_block = (THREADS / 32) as usize;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(rows_per_block) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
        unsafe { builder.launch(cfg) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            layout.shape().clone(),
        ))
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "scaled_softmax_bf16"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp1::name(self)))
    }

    fn cuda_fwd(
        &self,
        scores: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch(scores, layout, None)
    }
}

impl CustomOp2 for Softmax {
    fn name(&self) -> &'static str {
        "scaled_masked_softmax_bf16"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp2::name(self)))
    }

    fn cuda_fwd(
        &self,
        scores: &CudaStorage,
        layout: &Layout,
        mask: &CudaStorage,
        mask_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch(scores, layout, Some((mask, mask_layout)))
    }
}

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

/// Row norms; with a residual the output stacks `[normed, x + residual]` along a new first
/// dimension (a custom op has one output).
struct Norm {
    layer: bool,
    residual: bool,
    eps: f32,
}

impl Norm {
    fn launch(
        &self,
        xs: (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
        params: (&CudaStorage, &Layout),
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (storage, layout) = xs;
        let dims = layout.dims();
        let cols = dims[dims.len() - 1];
        let n = layout.shape().elem_count();
        let rows = n / cols;
        let dev = storage.device().clone();
        let x = storage
            .as_cuda_slice::<bf16>()?
            .slice(layout.start_offset()..);
        let res = match residual {
            Some((s, l)) => Some(s.as_cuda_slice::<bf16>()?.slice(l.start_offset()..)),
            None => None,
        };
        let p = params
            .0
            .as_cuda_slice::<bf16>()?
            .slice(params.1.start_offset()..);
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
        let rows_per_block = (THREADS / 32) as usize;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(rows_per_block) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument list matches the kernel's signature; shapes checked by the caller.
        unsafe { builder.launch(cfg) }.w()?;
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

impl CustomOp2 for Norm {
    fn name(&self) -> &'static str {
        "norm_bf16"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp2::name(self)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
        params: &CudaStorage,
        params_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch((xs, layout), None, (params, params_layout))
    }
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "add_norm_bf16"
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
        Err(cuda_only(CustomOp3::name(self)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
        residual: &CudaStorage,
        residual_layout: &Layout,
        params: &CudaStorage,
        params_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch(
            (xs, layout),
            Some((residual, residual_layout)),
            (params, params_layout),
        )
    }
}

/// `params`: the weight, or `[weight; bias]` concatenated for layer norms.
pub fn norm(
    xs: &Tensor,
    residual: Option<&Tensor>,
    params: &Tensor,
    layer: bool,
    eps: f32,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let op = Norm {
        layer,
        residual: residual.is_some(),
        eps,
    };
    debug_assert_eq!(op.residual, residual.is_some());
    Ok(Some(match residual {
        None => (xs.apply_op2_no_bwd(params, &op)?, None),
        Some(residual) => {
            let stacked = xs.apply_op3_no_bwd(residual, params, &op)?;
            (stacked.get(0)?, Some(stacked.get(1)?))
        }
    }))
}

struct Activation {
    kind: i32,
    /// Bias length for the bias + GELU kind.
    cols: i32,
}

impl Activation {
    fn launch(
        &self,
        gate: (&CudaStorage, &Layout),
        up: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = gate.0.device().clone();
        let n = gate.1.shape().elem_count();
        let g = gate
            .0
            .as_cuda_slice::<bf16>()?
            .slice(gate.1.start_offset()..);
        let u = match up {
            Some((s, l)) => Some(s.as_cuda_slice::<bf16>()?.slice(l.start_offset()..)),
            None => None,
        };
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<bf16>(n)? };
        let func = dev.get_or_load_custom_func("activation_bf16", MODULE, PTX)?;
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
            gate.1.shape().clone(),
        ))
    }
}

impl CustomOp1 for Activation {
    fn name(&self) -> &'static str {
        "gelu_tanh_bf16"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp1::name(self)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch((xs, layout), None)
    }
}

impl CustomOp2 for Activation {
    fn name(&self) -> &'static str {
        if self.kind == 2 {
            "bias_gelu_tanh_bf16"
        } else {
            "swiglu_bf16"
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(cuda_only(CustomOp2::name(self)))
    }

    fn cuda_fwd(
        &self,
        gate: &CudaStorage,
        gate_layout: &Layout,
        up: &CudaStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.launch((gate, gate_layout), Some((up, up_layout)))
    }
}

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
