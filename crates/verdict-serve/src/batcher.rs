//! Dynamic batching in front of the model: one model thread, one bounded queue.
//!
//! Handlers take a place in the queue as soon as a request is admitted ([`Slot`]), before they
//! decode and prepare its input, then enqueue without blocking; when `queue_capacity` places are
//! taken the request is refused at once, before any work is spent on it, and the caller answers
//! `503` with `Retry-After`, so memory stays bounded however hard the service is pushed. The
//! model thread takes the first waiting classification, then everything already queued up to
//! `max_batch_size`; the batch size therefore follows the load. If places are still held by
//! requests being prepared, it waits for them too, up to `max_wait`: they were admitted before
//! this batch started and are a few milliseconds away, and leaving one behind costs it a whole
//! model call (callers that each wait for their answer before sending again arrive together,
//! and a batch cut before the last of them is ready leaves a straggler for the next one).
//! While the service is busy (the previous batch held several items), a batch that is not
//! full and has nobody in preparation also gives newcomers a grace of an eighth of the last
//! model call: callers just answered are sending their next requests, and without it two
//! halves of a group of callers settle into alternating half-size batches. It does so only
//! where a call's fixed cost (the time of a one-item call) is at least a quarter of the last
//! call: merging two batches saves about one fixed cost, which pays for the grace when calls
//! are dominated by launches (a small model, or small batches on a GPU) and not when they
//! are dominated by arithmetic (there the GPU would idle during the grace for nothing). A
//! lone request, with nobody else admitted, starts at once and never pays for batching. Each
//! job carries its own reply channel and a batch returns one result per item in order, so
//! callers never see each other's answers. Chat completions run alone between batches,
//! streaming their tokens as they come. Jobs whose callers have gone (timeout, disconnect) are
//! dropped before the model sees them.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc as async_mpsc, oneshot};

use crate::config::ServeConfig;
use crate::decode::{run_chat, ChatEvent, ChatJob};
use crate::metrics::Metrics;
use crate::model::{ClassifyOutput, ModelError, PreparedInput, ServedModel};

/// How often a batch waiting for requests in preparation checks whether they still exist.
const PREPARATION_POLL: Duration = Duration::from_micros(500);

/// A busy batch that is not full waits for newcomers up to this fraction of the last model
/// call (see the module notes).
const GRACE_DIVISOR: u32 = 8;

/// The grace applies where a one-item call costs at least this fraction of the last call.
const FIXED_SHARE_DIVISOR: u32 = 4;

/// Reply of one classification.
pub type ClassifyReply = Result<ClassifyOutput, ModelError>;

/// Work for the model thread.
pub enum Job {
    Classify {
        /// Prepared by the handler ([`ServedModel::prepare`]), so the model thread only pads
        /// and runs.
        input: PreparedInput,
        reply: oneshot::Sender<ClassifyReply>,
    },
    Chat {
        job: Box<ChatJob>,
        events: async_mpsc::UnboundedSender<ChatEvent>,
    },
}

impl Job {
    fn abandoned(&self) -> bool {
        match self {
            Job::Classify { reply, .. } => reply.is_closed(),
            Job::Chat { events, .. } => events.is_closed(),
        }
    }
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    sender: SyncSender<Job>,
    /// Places taken: reserved (the job is being prepared) or queued.
    depth: Arc<AtomicUsize>,
    capacity: usize,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: answer 503.
    Full,
    /// The model thread has stopped (shutdown).
    Closed,
}

/// Batching knobs the model thread needs.
#[derive(Debug, Clone, Copy)]
struct Settings {
    max_batch_size: usize,
    max_wait: Duration,
}

/// A place in the queue, held while a request's input is prepared: a full queue refuses a
/// request before any work is spent on it. Dropped unused, the place is given back.
pub struct Slot {
    batcher: Batcher,
    submitted: bool,
}

impl Slot {
    /// Queues the job in the reserved place.
    pub fn submit(mut self, job: Job) -> Result<(), SubmitError> {
        self.submitted = true;
        match self.batcher.sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.batcher.depth.fetch_sub(1, Ordering::SeqCst);
                Err(match error {
                    TrySendError::Full(_) => SubmitError::Full,
                    TrySendError::Disconnected(_) => SubmitError::Closed,
                })
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.submitted {
            self.batcher.depth.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Batcher {
    /// Starts the model thread. It runs until every handle is dropped, finishing the jobs
    /// already queued.
    pub fn start(model: Arc<ServedModel>, config: &ServeConfig, metrics: Arc<Metrics>) -> Self {
        let capacity = config.queue_capacity.max(1);
        let (sender, receiver) = mpsc::sync_channel::<Job>(capacity);
        let depth = Arc::new(AtomicUsize::new(0));
        let settings = Settings {
            max_batch_size: config.max_batch_size.max(1),
            max_wait: config.max_wait,
        };
        let worker_depth = depth.clone();
        let spawned = std::thread::Builder::new()
            .name("verdict-model".into())
            .spawn(move || worker(model, receiver, worker_depth, settings, metrics));
        if let Err(error) = spawned {
            // Without a thread every job fails as `Closed`: the receiver is gone.
            tracing::error!("cannot start the model thread: {error}");
        }
        Self {
            sender,
            depth,
            capacity,
        }
    }

    /// Takes a place in the queue, or answers [`SubmitError::Full`] at once.
    pub fn reserve(&self) -> Result<Slot, SubmitError> {
        // The channel frees a place before the model thread counts it out, so `depth` below
        // capacity always leaves room in the channel.
        self.depth
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                (taken < self.capacity).then_some(taken + 1)
            })
            .map_err(|_| SubmitError::Full)?;
        Ok(Slot {
            batcher: self.clone(),
            submitted: false,
        })
    }

    /// Queues a job without waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.reserve()?.submit(job)
    }

    /// Jobs admitted and not yet taken by the model: queued, or being prepared in a reserved
    /// place (not counting the running batch).
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

fn worker(
    model: Arc<ServedModel>,
    receiver: mpsc::Receiver<Job>,
    depth: Arc<AtomicUsize>,
    settings: Settings,
    metrics: Arc<Metrics>,
) {
    let take = |job: Job| {
        depth.fetch_sub(1, Ordering::SeqCst);
        job
    };
    let mut held: Option<Job> = None;
    let mut previous_batch = 0usize;
    let mut last_call = Duration::ZERO;
    // The latest one-item call: the fixed cost of a call (unknown until one has run).
    let mut single_call: Option<Duration> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match receiver.recv() {
                Ok(job) => take(job),
                Err(_) => break,
            },
        };
        let (input, reply) = match first {
            Job::Chat { job, events } => {
                run_chat_job(&model, &job, &events);
                continue;
            }
            Job::Classify { input, reply } => (input, reply),
        };
        let mut inputs = vec![input];
        let mut replies = vec![reply];
        let opened = Instant::now();
        let deadline = opened + settings.max_wait;
        let launch_bound =
            single_call.is_some_and(|single| single >= last_call / FIXED_SHARE_DIVISOR);
        let grace = if previous_batch > 1 && launch_bound {
            opened + (last_call / GRACE_DIVISOR).min(settings.max_wait)
        } else {
            opened
        };
        while inputs.len() < settings.max_batch_size {
            let next = match receiver.try_recv() {
                Ok(job) => take(job),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Nothing queued: places still held belong to requests being prepared.
                    let now = Instant::now();
                    let preparing = depth.load(Ordering::SeqCst) > 0;
                    if now >= deadline || (!preparing && now >= grace) {
                        break;
                    }
                    let until = if preparing { deadline } else { grace };
                    // Woken by the next arrival; the poll notices a place taken by a newcomer,
                    // or given back unused (a request that failed while being prepared).
                    match receiver.recv_timeout((until - now).min(PREPARATION_POLL)) {
                        Ok(job) => take(job),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if next.abandoned() {
                continue;
            }
            match next {
                Job::Classify { input, reply } => {
                    inputs.push(input);
                    replies.push(reply);
                }
                chat @ Job::Chat { .. } => {
                    held = Some(chat);
                    break;
                }
            }
        }
        // Callers that gave up while waiting are not worth model time.
        let (batch, replies): (Vec<PreparedInput>, Vec<oneshot::Sender<ClassifyReply>>) = inputs
            .into_iter()
            .zip(replies)
            .filter(|(_, reply)| !reply.is_closed())
            .unzip();
        if batch.is_empty() {
            continue;
        }
        let size = batch.len();
        metrics.observe_batch(size);
        let started = Instant::now();
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| model.classify_prepared(batch)))
            .unwrap_or_else(|_| vec![Err(ModelError::Internal("the model panicked".into())); size]);
        last_call = started.elapsed();
        previous_batch = size;
        if size == 1 {
            single_call = Some(last_call);
        }
        let mut results = results.into_iter();
        for reply in replies {
            let result = results
                .next()
                .unwrap_or_else(|| Err(ModelError::Internal("missing batch result".into())));
            // A caller that left in the meantime just doesn't read it.
            let _ = reply.send(result);
        }
    }
    tracing::info!("model thread finished its queue");
}

fn run_chat_job(
    model: &ServedModel,
    job: &ChatJob,
    events: &async_mpsc::UnboundedSender<ChatEvent>,
) {
    if events.is_closed() {
        return;
    }
    let ServedModel::Qwen(engine) = model else {
        let _ = events.send(ChatEvent::Failed(ModelError::Input(
            "chat completions need a Qwen3-VL model".into(),
        )));
        return;
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_chat(engine, job, &mut |event| events.send(event).is_ok())
    }));
    if outcome.is_err() {
        let _ = events.send(ChatEvent::Failed(ModelError::Internal(
            "the model panicked".into(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BatchModel, ClassifyInput};

    /// Answers every item with its text's length; records the size of every batch it is
    /// given and takes `.1` per call plus `.2` per item.
    struct Lengths(Arc<std::sync::Mutex<Vec<usize>>>, Duration, Duration);

    impl BatchModel for Lengths {
        fn labels(&self) -> Vec<String> {
            vec!["a".into()]
        }

        fn accepts_images(&self) -> bool {
            false
        }

        fn classify_batch(
            &self,
            inputs: &[ClassifyInput],
        ) -> Vec<Result<ClassifyOutput, ModelError>> {
            self.0.lock().expect("sizes").push(inputs.len());
            std::thread::sleep(self.1 + self.2 * inputs.len() as u32);
            inputs
                .iter()
                .map(|input| {
                    Ok(ClassifyOutput {
                        probabilities: vec![input.text.as_deref().unwrap_or("").len() as f64],
                        multi_label: false,
                        reason: None,
                    })
                })
                .collect()
        }
    }

    /// A batcher over a [`Lengths`] model, with the sizes it records.
    fn recording(
        max_wait: Duration,
        call: Duration,
        per_item: Duration,
    ) -> (Arc<ServedModel>, Batcher, Arc<std::sync::Mutex<Vec<usize>>>) {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let model = Arc::new(ServedModel::Custom(Box::new(Lengths(
            sizes.clone(),
            call,
            per_item,
        ))));
        let config = ServeConfig {
            max_wait,
            ..ServeConfig::default()
        };
        let batcher = Batcher::start(model.clone(), &config, Arc::new(Metrics::default()));
        (model, batcher, sizes)
    }

    /// An answer, or a failed test instead of a hung one.
    fn answer(receiver: oneshot::Receiver<ClassifyReply>) -> f64 {
        let (done, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(receiver.blocking_recv());
        });
        let reply = wait
            .recv_timeout(Duration::from_secs(30))
            .expect("answered before the 30 s the test allows");
        reply.expect("answer").expect("scored").probabilities[0]
    }

    #[test]
    fn a_batch_waits_for_requests_admitted_and_still_being_prepared() {
        // The wait is bounded by a minute, so only the places held can end it early.
        let (model, batcher, sizes) =
            recording(Duration::from_secs(60), Duration::ZERO, Duration::ZERO);
        let slots: Vec<Slot> = (0..3).map(|_| batcher.reserve().expect("room")).collect();
        let mut answers = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            // The first arrives at once, the others as their (slower) preparation ends.
            std::thread::sleep(Duration::from_millis(20 * i as u64));
            let (job, receiver) = job(&model, &"x".repeat(i + 1));
            slot.submit(job).expect("queued");
            answers.push(receiver);
        }
        let scores: Vec<f64> = answers.into_iter().map(answer).collect();
        assert_eq!(scores, vec![1.0, 2.0, 3.0]);
        assert_eq!(*sizes.lock().unwrap(), vec![3], "one batch, no straggler");
    }

    #[test]
    fn a_lone_request_and_a_given_back_place_end_the_wait() {
        let (model, batcher, sizes) =
            recording(Duration::from_secs(60), Duration::ZERO, Duration::ZERO);
        // Nobody else admitted: the batch starts at once.
        let (alone, receiver) = job(&model, "ab");
        batcher.submit(alone).expect("queued");
        assert_eq!(answer(receiver), 2.0);
        // A place whose request fails in preparation is given back, and the batch waiting for
        // it goes without it.
        let doomed = batcher.reserve().expect("room");
        let (waiting, receiver) = job(&model, "abc");
        batcher.submit(waiting).expect("queued");
        std::thread::sleep(Duration::from_millis(20));
        drop(doomed);
        assert_eq!(answer(receiver), 3.0);
        assert_eq!(*sizes.lock().unwrap(), vec![1, 1]);
    }

    #[test]
    fn a_busy_batch_gives_callers_just_answered_a_grace() {
        // Calls of 800 ms: a grace of 100 ms, ten times the newcomer's 10 ms delay.
        let (model, batcher, sizes) = recording(
            Duration::from_secs(60),
            Duration::from_millis(800),
            Duration::ZERO,
        );
        let send = |slot: Slot, text: &str| {
            let (job, receiver) = job(&model, text);
            slot.submit(job).expect("queued");
            receiver
        };
        // A lone caller first: a one-item call, the fixed cost of a call (all of it here).
        assert_eq!(answer(send(batcher.reserve().expect("room"), "")), 0.0);
        // Two callers arrive together: one batch of two, so the service counts as busy.
        let slots = (
            batcher.reserve().expect("room"),
            batcher.reserve().expect("room"),
        );
        let first = [send(slots.0, "a"), send(slots.1, "bb")];
        assert_eq!(first.map(answer), [1.0, 2.0]);
        // They come back 10 ms apart, the second not yet admitted when the first is taken.
        let again = send(batcher.reserve().expect("room"), "ccc");
        std::thread::sleep(Duration::from_millis(10));
        let late = send(batcher.reserve().expect("room"), "dddd");
        assert_eq!([again, late].map(answer), [3.0, 4.0]);
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![1, 2, 2],
            "no half-size batches"
        );
    }

    #[test]
    fn no_grace_where_calls_are_dominated_by_their_items() {
        // 150 ms per item, nothing fixed: a batch of eight costs eight one-item calls, and a
        // grace would last 150 ms, past the late caller's 60 ms.
        let (model, batcher, sizes) = recording(
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_millis(150),
        );
        let send = |slot: Slot, text: &str| {
            let (job, receiver) = job(&model, text);
            slot.submit(job).expect("queued");
            receiver
        };
        assert_eq!(answer(send(batcher.reserve().expect("room"), "")), 0.0);
        let slots: Vec<Slot> = (0..8).map(|_| batcher.reserve().expect("room")).collect();
        let eight: Vec<_> = slots.into_iter().map(|slot| send(slot, "a")).collect();
        assert!(eight.into_iter().map(answer).all(|score| score == 1.0));
        // Seven come back at once, the eighth 60 ms later: merging would save nothing, so
        // the seven go without waiting for it.
        let slots: Vec<Slot> = (0..7).map(|_| batcher.reserve().expect("room")).collect();
        let seven: Vec<_> = slots.into_iter().map(|slot| send(slot, "bb")).collect();
        std::thread::sleep(Duration::from_millis(60));
        let late = send(batcher.reserve().expect("room"), "ccc");
        assert!(seven.into_iter().map(answer).all(|score| score == 2.0));
        assert_eq!(answer(late), 3.0);
        assert_eq!(*sizes.lock().unwrap(), vec![1, 8, 7, 1]);
    }

    fn job(model: &ServedModel, text: &str) -> (Job, oneshot::Receiver<ClassifyReply>) {
        let (reply, receiver) = oneshot::channel();
        let input = ClassifyInput {
            text: Some(text.into()),
            ..ClassifyInput::default()
        };
        let input = model.prepare(input).expect("prepared");
        (Job::Classify { input, reply }, receiver)
    }

    #[test]
    fn places_are_reserved_before_work_and_given_back_unused() {
        let model = Arc::new(ServedModel::Custom(Box::new(Lengths(
            Arc::default(),
            Duration::ZERO,
            Duration::ZERO,
        ))));
        let config = ServeConfig {
            queue_capacity: 2,
            ..ServeConfig::default()
        };
        let batcher = Batcher::start(model.clone(), &config, Arc::new(Metrics::default()));
        // Places being prepared count against the queue: the third caller is refused at once.
        let first = batcher.reserve().expect("room for one");
        let second = batcher.reserve().expect("room for two");
        assert_eq!(batcher.queue_depth(), 2);
        assert!(matches!(batcher.reserve(), Err(SubmitError::Full)));
        // An unused place (the request failed while being prepared) is given back.
        drop(first);
        assert_eq!(batcher.queue_depth(), 1);
        let third = batcher.reserve().expect("the freed place");
        let (job_a, answer_a) = job(&model, "abc");
        let (job_b, answer_b) = job(&model, "hello");
        second.submit(job_a).expect("queued");
        third.submit(job_b).expect("queued");
        let a = answer_a.blocking_recv().expect("answer").expect("scored");
        let b = answer_b.blocking_recv().expect("answer").expect("scored");
        assert_eq!((a.probabilities[0], b.probabilities[0]), (3.0, 5.0));
        assert_eq!(batcher.queue_depth(), 0);
    }
}
