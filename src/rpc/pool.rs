//! The server's handler threads.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::lock;

/// One request to handle: run on a handler thread of the [`Pool`].
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The handler threads, started on demand up to `max`; they stay for the
/// server's life.
pub(super) struct Pool {
    max: usize,
    queue: Mutex<PoolQueue>,
    work: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct PoolQueue {
    jobs: std::collections::VecDeque<Job>,
    idle: usize,
    started: usize,
    stop: bool,
}

impl Pool {
    pub(super) fn new(max: usize) -> Pool {
        Pool {
            max: max.max(1),
            queue: Mutex::new(PoolQueue::default()),
            work: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues `job`, starting a handler thread when none is idle and the
    /// bound allows. `Err(job)` when no thread could be started at all.
    pub(super) fn submit(self: &Arc<Self>, job: Job) -> std::result::Result<(), Job> {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        // Idle threads that were woken but have not taken a job yet still
        // count as idle: compare with the jobs waiting, not with zero.
        if q.jobs.len() > q.idle && q.started < self.max {
            let pool = Arc::clone(self);
            match std::thread::Builder::new()
                .name("ipcx-rpc-handler".into())
                .spawn(move || pool.work_loop())
            {
                Ok(t) => {
                    q.started += 1;
                    lock(&self.threads).push(t);
                }
                Err(e) if q.started == 0 => {
                    tracing::error!(%e, "rpc server: cannot start a handler thread");
                    return Err(q.jobs.pop_back().expect("the job just queued"));
                }
                // The threads already running will take it.
                Err(_) => {}
            }
        }
        drop(q);
        self.work.notify_one();
        Ok(())
    }

    fn work_loop(&self) {
        let mut q = lock(&self.queue);
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                job();
                q = lock(&self.queue);
                continue;
            }
            if q.stop {
                return;
            }
            q.idle += 1;
            q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
            q.idle -= 1;
        }
    }

    /// Lets the threads finish the queued jobs, then joins them.
    pub(super) fn stop_and_join(&self) {
        lock(&self.queue).stop = true;
        self.work.notify_all();
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}
