//! Calls of one kind merged into one writer job, so that their rows can be written set-wise.
//!
//! Each send's outcome and each enqueue is its own store call. A call joins the kind's queue;
//! the first call of an empty queue submits a writer job, which takes everything queued when it
//! runs (the calls that arrived while it waited for the writer included) and applies them
//! together in that group commit. Every caller is answered after the commit, with its own share
//! of the results. If the merged job fails, each of its calls is run again alone, so one bad call
//! fails alone, as with the writer's own batches.

use super::StoreError;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// One caller's inputs and where its outputs go.
pub struct Call<I, O> {
    /// The inputs of the call.
    pub input: Vec<I>,
    reply: oneshot::Sender<Result<Vec<O>, StoreError>>,
}

/// Where a caller's answer arrives.
pub type Answer<O> = oneshot::Receiver<Result<Vec<O>, StoreError>>;

/// The calls of one kind waiting for their job.
pub struct Coalescer<I, O> {
    pending: Mutex<Vec<Call<I, O>>>,
}

impl<I, O> Default for Coalescer<I, O> {
    fn default() -> Self {
        Coalescer {
            pending: Mutex::new(Vec::new()),
        }
    }
}

/// What one merged job took from its queue (kept for a second run of the job: a writer batch
/// that fails runs its jobs again one at a time).
pub struct Batch<I, O> {
    queue: Arc<Coalescer<I, O>>,
    taken: Mutex<Option<Vec<Call<I, O>>>>,
}

impl<I, O> Coalescer<I, O> {
    /// Queues a call; `Some(batch)` when it is the first of a new batch, whose job the caller
    /// must submit (and then [`Batch::finish`]).
    pub fn push(self: &Arc<Self>, input: Vec<I>) -> (Option<Arc<Batch<I, O>>>, Answer<O>) {
        let (reply, rx) = oneshot::channel();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let first = pending.is_empty();
        pending.push(Call { input, reply });
        let batch = first.then(|| {
            Arc::new(Batch {
                queue: self.clone(),
                taken: Mutex::new(None),
            })
        });
        (batch, rx)
    }
}

impl<I, O> Batch<I, O> {
    /// Runs `f` over the calls this job took (taking the queue's on the first run).
    pub fn with_calls<R>(&self, f: impl FnOnce(&[Call<I, O>]) -> R) -> R {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let calls = taken.get_or_insert_with(|| self.take_queue());
        f(calls)
    }

    fn take_queue(&self) -> Vec<Call<I, O>> {
        std::mem::take(
            &mut *self
                .queue
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// After the job: the calls it took (or, if it never ran, those queued for it).
    pub fn take_calls(&self) -> Vec<Call<I, O>> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken.take().unwrap_or_else(|| self.take_queue())
    }
}

impl<I, O> Call<I, O> {
    /// Answers the caller.
    pub fn answer(self, result: Result<Vec<O>, StoreError>) {
        let _ = self.reply.send(result);
    }
}
