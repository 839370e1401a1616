//! Shared state of the service: settings, metrics, what the task says (policy, mesh views),
//! and the model once it is loaded.
//!
//! The model arrives after the socket is open ([`AppState::install`]), so `/healthz` answers
//! at once while `/readyz` and the model endpoints say `not_ready` until loading finishes.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use verdict_core::TaskSpec;
use verdict_eval::policy::PolicyThresholds;

use crate::batcher::Batcher;
use crate::config::ServeConfig;
use crate::error::{AppError, Result, ServeError};
use crate::inputs::MeshViews;
use crate::metrics::Metrics;
use crate::model::{LabelSet, ModelInfo, ServedModel};

/// The keep / review / demote policy of a binary-policy task.
#[derive(Debug, Clone, PartialEq)]
pub struct ServePolicy {
    pub positive: String,
    pub thresholds: PolicyThresholds,
}

/// What a task file contributes to serving.
#[derive(Debug, Clone, Default)]
pub struct TaskSettings {
    /// Labels for generative models (with descriptions for the prompt).
    pub labels: Option<LabelSet>,
    pub policy: Option<ServePolicy>,
    /// Views and size for mesh uploads.
    pub views: Vec<String>,
    pub view_size: u32,
}

impl TaskSettings {
    /// Reads the labels, policy and render views of a task file.
    pub fn from_task_file(path: &Path) -> Result<Self> {
        let task = TaskSpec::load(path).map_err(|e| ServeError::Task {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self::from_task(&task))
    }

    pub fn from_task(task: &TaskSpec) -> Self {
        let labels = (!task.labels.is_empty()).then(|| LabelSet {
            names: task.labels.iter().map(|l| l.name.clone()).collect(),
            descriptions: task.labels.iter().map(|l| l.description.clone()).collect(),
        });
        let policy = task.policy.as_ref().map(|policy| ServePolicy {
            positive: policy.positive.clone(),
            thresholds: PolicyThresholds {
                review: policy.review,
                demote: policy.demote,
            },
        });
        Self {
            labels,
            policy,
            views: task.render.views.clone(),
            view_size: task.render.size,
        }
    }

    /// Without a task: no policy, the default three views at 512 pixels.
    pub fn without_task(labels: Option<LabelSet>) -> Self {
        Self {
            labels,
            policy: None,
            views: ["front", "left", "iso"].map(String::from).to_vec(),
            view_size: 512,
        }
    }
}

/// A loaded model and the queue in front of it.
pub struct Engine {
    pub model: Arc<ServedModel>,
    pub batcher: Batcher,
    pub labels: Vec<String>,
}

struct Inner {
    config: ServeConfig,
    metrics: Arc<Metrics>,
    info: ModelInfo,
    policy: Option<ServePolicy>,
    mesh: Result<MeshViews, String>,
    http: reqwest::Client,
    engine: OnceLock<Engine>,
    batches: crate::batches::BatchStore,
}

/// Cheap-to-clone handle given to every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// A service without a model yet; see [`AppState::install`].
    pub fn new(config: ServeConfig, info: ModelInfo, task: &TaskSettings) -> Result<Self> {
        if let Some(policy) = &task.policy {
            policy
                .thresholds
                .validate()
                .map_err(|e| ServeError::Config(e.to_string()))?;
        }
        let http = reqwest::Client::builder()
            .timeout(config.url_timeout)
            .build()
            .map_err(|e| ServeError::Config(format!("HTTP client: {e}")))?;
        let mesh = MeshViews::new(&task.views, task.view_size, config.max_triangles);
        let batches = crate::batches::BatchStore::open(config.batch_dir.as_deref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                metrics: Arc::new(Metrics::default()),
                info,
                policy: task.policy.clone(),
                mesh,
                http,
                engine: OnceLock::new(),
                batches,
            }),
        })
    }

    /// A ready service around `model`.
    pub fn with_model(
        config: ServeConfig,
        info: ModelInfo,
        task: &TaskSettings,
        model: ServedModel,
    ) -> Result<Self> {
        let state = Self::new(config, info, task)?;
        state.install(model)?;
        Ok(state)
    }

    /// Starts the batcher for `model` and marks the service ready. A policy whose positive
    /// label the model does not know is refused here, before any request sees it.
    pub fn install(&self, mut model: ServedModel) -> Result<()> {
        if let ServedModel::Qwen(engine) = &mut model {
            engine.set_max_reason_bytes(self.inner.config.max_reason_bytes);
        }
        let labels = model.labels();
        if let Some(policy) = &self.inner.policy {
            if !labels.contains(&policy.positive) {
                return Err(ServeError::Config(format!(
                    "the task's policy.positive `{}` is not one of the model's labels {labels:?}",
                    policy.positive
                )));
            }
        }
        let model = Arc::new(model);
        let batcher = Batcher::start(
            model.clone(),
            &self.inner.config,
            self.inner.metrics.clone(),
        );
        self.inner
            .engine
            .set(Engine {
                model,
                batcher,
                labels,
            })
            .map_err(|_| ServeError::Config("a model is already installed".into()))
    }

    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    pub fn policy(&self) -> Option<&ServePolicy> {
        self.inner.policy.as_ref()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Files and batches of the batch API.
    pub fn batches(&self) -> &crate::batches::BatchStore {
        &self.inner.batches
    }

    pub fn engine(&self) -> Option<&Engine> {
        self.inner.engine.get()
    }

    /// The engine, or `503 not_ready`.
    pub fn ready_engine(&self) -> Result<&Engine, AppError> {
        self.engine().ok_or_else(AppError::not_ready)
    }

    /// Mesh rendering settings, or why meshes cannot be served.
    pub fn mesh(&self) -> Result<&MeshViews, AppError> {
        self.inner.mesh.as_ref().map_err(|message| {
            AppError::bad_request(
                "unsupported_mesh",
                format!("mesh uploads are off: the task's render settings are invalid ({message})"),
            )
        })
    }
}
