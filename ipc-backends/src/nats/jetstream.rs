//! Standalone queues on JetStream: `nats://HOST:PORT/NAME?pattern=queue`
//! (`docs/nats.md`, "Queues on JetStream"). The queue API
//! (`ipcx::queue`, [`crate::standalone`]) drives this module.
//!
//! - **One stream per queue**, `ipcxq_NAME` (NAME with `_` doubled and
//!   `.` written `_-`, since stream names hold no dot), on the one subject
//!   `ipcx.NAME.q`: work-queue retention (a message is removed once
//!   acknowledged), file storage, `discard=new` (a full stream refuses a
//!   message, which the producer takes as backpressure), `replicas=`
//!   copies in a cluster. It lives on the server until removed: every
//!   client may exit and the server restart in between.
//! - **One durable pull consumer per queue**, named like the stream and
//!   shared by every consumer process: each pull takes the next message
//!   for that process alone (competing consumers), explicit
//!   acknowledgement, redelivery after `ack_wait=` (default
//!   [`DEFAULT_ACK_WAIT`]) without one, no limit on deliveries.
//! - **The message type** is recorded in the stream's description
//!   (`ipcx-queue fingerprint=HEX type=NAME`: server 2.9 has no stream
//!   metadata) and every message carries the queue header of the kernel
//!   queues ([`crate::standalone::header`]).
//! - **Open handles answer a roll call.** Each producer and consumer
//!   handle subscribes to `ipcx.q.who.STREAM` and answers a request there
//!   with its role, so [`crate::standalone::stat`] and
//!   [`crate::standalone::list_broker`] count the handles open now (the
//!   server counts neither: every consumer shares one durable consumer,
//!   and a publisher is any client). A handle that does not answer within
//!   [`ROLL_CALL_WAIT`] (a stopped process, a lost connection) is not
//!   counted; clients that are not ipcx never are.
//! - **Every message has a `Nats-Msg-Id`**: the caller's id, or a fresh
//!   NUID. A send the server did not confirm (a lost connection, a cluster
//!   electing a new leader) is sent again with the same id, and the
//!   stream's duplicate window (two minutes) keeps one copy.

use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js, Context};
use bytes::Bytes;
use ipc_core::endpoint::DEFAULT_MAX_MESSAGE_SIZE;
use ipc_core::{Deadline, Endpoint, Error, Result, TypeTag};

use super::options::{self, parts};
use super::runtime;

/// How long a received message may go unacknowledged before the server
/// gives it to another consumer, unless `ack_wait=` says otherwise.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// The stream's duplicate window: a message id seen within it is stored
/// once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// The longest single wait for the server (a pull, a publish
/// acknowledgement); longer waits are made of several.
const STEP: Duration = Duration::from_secs(5);
/// Attempts at a confirmed acknowledgement.
const ACK_TRIES: u32 = 3;
/// Pause before sending again to a full stream.
const FULL_NAP: Duration = Duration::from_millis(20);
/// How long a roll call of a queue's open handles waits for answers.
pub const ROLL_CALL_WAIT: Duration = Duration::from_millis(300);
/// The prefix of every ipcx queue's stream name.
const STREAM_PREFIX: &str = "ipcxq_";

/// The stream (and durable consumer) name of queue `name`.
pub fn stream_name(name: &str) -> String {
    let mut s = String::from(STREAM_PREFIX);
    for c in name.chars() {
        match c {
            '_' => s.push_str("__"),
            '.' => s.push_str("_-"),
            c => s.push(c),
        }
    }
    s
}

/// The queue name whose stream is `stream` (the inverse of
/// [`stream_name`]); `None` for a name [`stream_name`] does not make.
pub fn queue_name(stream: &str) -> Option<String> {
    let mut rest = stream.strip_prefix(STREAM_PREFIX)?.chars();
    let mut name = String::new();
    while let Some(c) = rest.next() {
        match c {
            '_' => match rest.next()? {
                '_' => name.push('_'),
                '-' => name.push('.'),
                _ => return None,
            },
            c => name.push(c),
        }
    }
    (!name.is_empty()).then_some(name)
}

/// The subject the open handles of the queue whose stream is `stream`
/// answer a roll call on.
fn roll_call_subject(stream: &str) -> String {
    format!("ipcx.q.who.{stream}")
}

/// Where a roll call's answers may go: an inbox (`_INBOX.`, async-nats's
/// default prefix, which the asker uses). A handle answers nowhere else,
/// so a client that may publish on the roll-call subject cannot make every
/// open handle publish, with its own credentials, on a subject of its
/// choosing (into the queue's own stream, say).
const ROLL_CALL_REPLY_PREFIX: &str = "_INBOX.";

/// The most roll calls a handle answers in one second: an operator's
/// `stat` or `ls` asks once; a flood of requests costs each handle at most
/// this many publishes.
const ROLL_CALL_ANSWERS_PER_SECOND: u32 = 20;

/// The most answers one roll call counts per stream: answers beyond it (a
/// client flooding the inbox) are dropped, not stored.
const ROLL_CALL_MAX_ANSWERS: usize = 65_536;

/// The subject the queue's messages are published on.
pub fn subject(name: &str) -> String {
    format!("ipcx.{name}.q")
}

const DESCRIPTION: &str = "ipcx-queue";

fn describe(tag: &TypeTag) -> String {
    format!(
        "{DESCRIPTION} fingerprint={:016x} type={}",
        tag.fingerprint, tag.name
    )
}

fn recorded(description: Option<&str>) -> Option<TypeTag> {
    let rest = description?.strip_prefix(DESCRIPTION)?.trim_start();
    let (fp, name) = rest.split_once(' ')?;
    let fp = u64::from_str_radix(fp.strip_prefix("fingerprint=")?, 16).ok()?;
    let name = name.strip_prefix("type=")?;
    Some(TypeTag::new(name.to_string(), fp))
}

fn io(endpoint: &Endpoint, what: &str, e: impl std::fmt::Display) -> Error {
    let e = e.to_string();
    let hint = if e.contains("jetstream not enabled")
        || e.contains("JetStream not enabled")
        || e.contains("no responders")
        // async-nats's words for "no responders" on the JetStream API.
        || e.contains("requested JetStream resource does not exist")
    {
        "; is JetStream enabled on the server (nats-server -js, or a jetstream {} block)?"
    } else if e.contains("replicas > 1 not supported") || e.contains("insufficient resources") {
        "; replicas= can be at most the number of JetStream servers in the cluster"
    } else {
        ""
    };
    Error::io(
        format!("{endpoint}: {what}"),
        std::io::Error::other(format!("{e}{hint}")),
    )
}

fn missing(endpoint: &Endpoint) -> Error {
    Error::io(
        format!(
            "{endpoint}: no such queue (no JetStream stream {}); create it first (Producer::open creates it, or ipcx queue create)",
            stream_name(parts(endpoint).1)
        ),
        std::io::Error::from(std::io::ErrorKind::NotFound),
    )
}

fn is_not_found(e: &impl std::fmt::Display) -> bool {
    let s = e.to_string();
    s.contains("stream not found") || s.contains("10059")
}

/// The time left until `deadline`, capped at [`STEP`]; `None` once it
/// passed (`Deadline::Now` gets one short try).
fn step(deadline: Deadline) -> Option<Duration> {
    match deadline {
        Deadline::Never => Some(STEP),
        Deadline::Now => None,
        Deadline::At(_) => deadline
            .remaining()
            .filter(|d| !d.is_zero())
            .map(|d| d.min(STEP)),
    }
}

/// An opened JetStream queue.
pub(crate) struct JsQueue {
    endpoint: Endpoint,
    /// The connection of `js`, for roll calls.
    client: Client,
    js: Context,
    stream: String,
    subject: String,
    /// The durable consumer (consumers only).
    consumer: Option<PullConsumer>,
    /// The largest kernel-style message (header included).
    message_size: usize,
    /// The acknowledgement of the message received last, until taken.
    pending: Option<(Acker, u64)>,
    /// The task answering roll calls (producers and consumers).
    roll_call: Option<tokio::task::AbortHandle>,
}

impl Drop for JsQueue {
    fn drop(&mut self) {
        if let Some(task) = self.roll_call.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for JsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsQueue")
            .field("endpoint", &self.endpoint)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Who opens a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opener {
    Producer,
    Consumer,
    /// `stat`, `purge`: neither, and not counted.
    Admin,
}

/// How to open: as `standalone::Open`, without the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    OpenOrCreate,
    Create,
    Existing,
}

impl JsQueue {
    /// Opens (or creates, as `how` says) the queue of `endpoint`; a
    /// consumer also opens (or creates) the durable consumer. Returns the
    /// queue, whether it was created, and the recorded type.
    pub(crate) fn open(
        endpoint: &Endpoint,
        how: How,
        opener: Opener,
        tag: &TypeTag,
    ) -> Result<(JsQueue, bool, Option<TypeTag>)> {
        let consumer = opener == Opener::Consumer;
        let client = options::connect(endpoint)?;
        let max_payload = client.server_info().max_payload;
        let header = crate::standalone::HEADER_LEN;
        let o = endpoint.options();
        let wanted = o.max_message_size;
        let message_size = if wanted + header <= max_payload {
            wanted + header
        } else if wanted == DEFAULT_MAX_MESSAGE_SIZE {
            max_payload
        } else {
            return Err(Error::Limit {
                endpoint: endpoint.to_string(),
                option: "max_message_size",
                value: wanted as u64,
                limit: max_payload.saturating_sub(header) as u64,
                source_of_limit: format!(
                    "the NATS server's max_payload of {max_payload} bytes (its INFO), less the {header}-byte queue header"
                ),
                fix: format!(
                    "use max_message_size={} or less, or raise max_payload in the server's configuration",
                    max_payload.saturating_sub(header)
                ),
            });
        };
        let (_, name) = parts(endpoint);
        let stream = stream_name(name);
        let subject = subject(name);
        let config = stream::Config {
            name: stream.clone(),
            description: Some(describe(tag)),
            subjects: vec![subject.clone()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            discard: DiscardPolicy::New,
            max_messages: o.capacity.map_or(-1, |c| c as i64),
            max_bytes: o.max_bytes.map_or(-1, |b| b as i64),
            max_message_size: message_size as i32,
            num_replicas: o.replicas.unwrap_or(1) as usize,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let ack_wait = o.ack_wait.unwrap_or(DEFAULT_ACK_WAIT);
        // The context starts a task: it is made on the runtime.
        let context = {
            let _on_runtime = runtime::handle()?.enter();
            js::new(client.clone())
        };
        let jsx = context.clone();
        let ep = endpoint.clone();
        let timeout = o.connect_timeout;
        let opened = runtime::run(async move {
            let work = async {
                let existing = match jsx.get_stream(&config.name).await {
                    Ok(s) => Some(s),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(io(&ep, "looking up the queue's JetStream stream", e)),
                };
                let (mut stream, created) = match (existing, how) {
                    (Some(_), How::Create) => {
                        return Err(Error::AddrInUse {
                            endpoint: ep.to_string(),
                            owner: None,
                            detail: "the queue already exists; open it instead of creating it, or remove it first (ipcx queue rm)".into(),
                        });
                    }
                    (Some(s), _) => (s, false),
                    (None, How::Existing) => return Err(missing(&ep)),
                    (None, _) => match jsx.create_stream(config.clone()).await {
                        Ok(s) => (s, true),
                        // Another opener created it meanwhile.
                        Err(e) => match jsx.get_stream(&config.name).await {
                            Ok(s) => (s, false),
                            Err(_) => {
                                return Err(io(&ep, "creating the queue's JetStream stream", e));
                            }
                        },
                    },
                };
                let info = stream
                    .info()
                    .await
                    .map_err(|e| io(&ep, "reading the stream's configuration", e))?
                    .clone();
                let consumer = if consumer {
                    let c = stream
                        .get_or_create_consumer::<pull::Config>(
                            &config.name,
                            pull::Config {
                                durable_name: Some(config.name.clone()),
                                ack_policy: AckPolicy::Explicit,
                                ack_wait,
                                max_deliver: -1,
                                ..Default::default()
                            },
                        )
                        .await
                        .map_err(|e| io(&ep, "opening the queue's durable consumer", e))?;
                    Some(c)
                } else {
                    None
                };
                Ok((info, created, consumer))
            };
            tokio::time::timeout(timeout, work).await.map_err(|_| {
                crate::conn::fail::connect_timeout(&ep, "opening the JetStream queue")
            })?
        })??;
        let (info, created, consumer) = opened;
        check_config(
            endpoint,
            &info.config,
            consumer.as_ref().map(|c| c.cached_info()),
        )?;
        let roll_call = match opener {
            Opener::Admin => None,
            _ => Some(answer_roll_calls(
                endpoint,
                &client,
                &info.config.name,
                opener,
            )?),
        };
        let recorded = if created {
            Some(tag.clone())
        } else {
            recorded(info.config.description.as_deref())
        };
        let message_size = if info.config.max_message_size > 0 {
            (info.config.max_message_size as usize).min(message_size.max(header))
        } else {
            message_size
        };
        Ok((
            JsQueue {
                endpoint: endpoint.clone(),
                client,
                js: context,
                stream: info.config.name.clone(),
                subject: config_subject(name),
                consumer,
                message_size,
                pending: None,
                roll_call,
            },
            created,
            recorded,
        ))
    }

    /// The largest message, header included.
    pub(crate) fn message_size(&self) -> usize {
        self.message_size
    }

    /// Publishes `msg` (header and payload) with message id `id` (a fresh
    /// one if `None`) and waits for the stream to store it. `Ok(false)`
    /// when `deadline` passed while the stream was full or unreachable.
    ///
    /// # Errors
    /// A refusal of the server other than "full".
    pub(crate) fn send(
        &mut self,
        msg: &[u8],
        id: Option<&str>,
        deadline: Deadline,
    ) -> Result<bool> {
        runtime::run(self.send_future(msg, id, deadline))?
    }

    /// What [`JsQueue::send`] does, as a future of its own (for the async
    /// API, which awaits it on the runtime ipcx owns).
    pub(crate) fn send_future(
        &self,
        msg: &[u8],
        id: Option<&str>,
        deadline: Deadline,
    ) -> impl std::future::Future<Output = Result<bool>> + Send + 'static {
        let id = id.map_or_else(|| nuid::next().to_string(), str::to_string);
        let payload = Bytes::copy_from_slice(msg);
        let js = self.js.clone();
        let subject = self.subject.clone();
        let stream = self.stream.clone();
        let endpoint = self.endpoint.clone();
        async move {
            loop {
                let wait = step(deadline).unwrap_or(Duration::from_millis(500));
                let publish = async {
                    let ack = js
                        .send_publish(
                            subject.clone(),
                            js::message::PublishMessage::build()
                                .payload(payload.clone())
                                .message_id(&id),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    ack.await.map_err(|e| {
                        // The server's reason (e.g. "maximum messages
                        // exceeded") is in the source.
                        let source = std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_default();
                        format!("{e}: {source}")
                    })
                };
                match tokio::time::timeout(wait, publish).await {
                    Ok(Ok(_stored)) => return Ok(true),
                    Ok(Err(e)) if full(&e) => {}
                    // No responder for the subject: the stream is gone, or
                    // (in a cluster) its leader is being elected.
                    Ok(Err(e)) if e.contains("no stream found") => {
                        if let Err(e) = js.get_stream(&stream).await
                            && is_not_found(&e)
                        {
                            return Err(io(
                                &endpoint,
                                "sending",
                                "the queue's stream is gone (removed?); open the queue again to create it",
                            ));
                        }
                    }
                    Ok(Err(e)) if transient(&e) => {
                        tracing::debug!(%endpoint, error = %e, "jetstream publish not confirmed; sending again");
                    }
                    Ok(Err(e)) => return Err(io(&endpoint, "sending", e)),
                    // Not confirmed in time: sent again under the same id.
                    Err(_) => {}
                }
                if passed(deadline) {
                    return Ok(false);
                }
                tokio::time::sleep(FULL_NAP).await;
            }
        }
    }

    /// Pulls the next message for this consumer into `buf`, waiting until
    /// `deadline`; its acknowledgement waits in `pending`. `None` when the
    /// deadline passed with nothing.
    ///
    /// # Errors
    /// A failure of the server or the consumer.
    pub(crate) fn recv(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Option<usize>> {
        let pull = self.pull_future(deadline)?;
        let got = runtime::run(pull)??;
        Ok(got.map(|m| self.take(m, buf)))
    }

    /// Takes a pulled message: its payload into `buf`, its acknowledgement
    /// into `pending`. Returns its length.
    pub(crate) fn take(&mut self, m: js::Message, buf: &mut Vec<u8>) -> usize {
        let deliveries = m.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let (msg, acker) = m.split();
        buf.clear();
        buf.extend_from_slice(&msg.payload);
        self.pending = Some((acker, deliveries));
        buf.len()
    }

    /// The pull of [`JsQueue::recv`] as a future of its own.
    ///
    /// # Errors
    /// A handle not opened as a consumer.
    pub(crate) fn pull_future(
        &mut self,
        deadline: Deadline,
    ) -> Result<
        impl std::future::Future<Output = Result<Option<js::Message>>> + Send + 'static + use<>,
    > {
        let Some(consumer) = self.consumer.clone() else {
            return Err(Error::io(
                format!("{}: receiving", self.endpoint),
                std::io::Error::other("not opened as a consumer"),
            ));
        };
        // A message received before and never acknowledged is done with.
        self.ack_now();
        let endpoint = self.endpoint.clone();
        Ok(async move {
            loop {
                let (wait, no_wait) = match step(deadline) {
                    Some(w) => (w.max(Duration::from_millis(10)), false),
                    None => (Duration::from_millis(500), true),
                };
                let pull = async {
                    use futures_core::Stream;
                    let mut batch = if no_wait {
                        consumer.fetch().max_messages(1).messages().await
                    } else {
                        consumer
                            .batch()
                            .max_messages(1)
                            .expires(wait)
                            .messages()
                            .await
                    }
                    .map_err(|e| e.to_string())?;
                    let next =
                        std::future::poll_fn(|cx| std::pin::Pin::new(&mut batch).poll_next(cx))
                            .await;
                    match next {
                        None => Ok(None),
                        Some(Ok(m)) => Ok(Some(m)),
                        Some(Err(e)) => Err(e.to_string()),
                    }
                };
                match tokio::time::timeout(wait + Duration::from_secs(1), pull).await {
                    Ok(Ok(Some(m))) => return Ok(Some(m)),
                    Ok(Ok(None)) | Err(_) => {}
                    Ok(Err(e)) if transient(&e) => {
                        tracing::debug!(%endpoint, error = %e, "jetstream pull failed; pulling again");
                        tokio::time::sleep(FULL_NAP).await;
                    }
                    Ok(Err(e)) => return Err(io(&endpoint, "receiving", e)),
                }
                if no_wait || passed(deadline) {
                    return Ok(None);
                }
            }
        })
    }

    /// Pulls up to `max` messages in one request: what the stream has for
    /// this consumer now (a "no wait" fetch, which the server answers at
    /// once and ends, so no message is sent to a request nobody reads);
    /// when it has none, waits until `deadline` for one message as
    /// [`JsQueue::pull_future`] does. Every message returned is delivered
    /// to this process: its `ack_wait` runs from now.
    ///
    /// # Errors
    /// A handle not opened as a consumer.
    pub(crate) fn pull_batch_future(
        &mut self,
        max: usize,
        deadline: Deadline,
    ) -> Result<impl std::future::Future<Output = Result<Vec<js::Message>>> + Send + 'static> {
        let wait_one = self.pull_future(deadline)?;
        let Some(consumer) = self.consumer.clone() else {
            return Err(Error::protocol("a JetStream consumer without its consumer"));
        };
        let endpoint = self.endpoint.clone();
        Ok(async move {
            // Outside the timed fetch: what arrived before its time ran out
            // is handed out, not dropped unacknowledged.
            let mut got = Vec::with_capacity(max.min(1024));
            let fetch = async {
                let mut batch = consumer
                    .fetch()
                    .max_messages(max)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(m) = next(&mut batch).await {
                    match m {
                        Ok(m) => got.push(m),
                        // What came before the failure is this
                        // process's to hand out.
                        Err(e) if got.is_empty() => return Err(e.to_string()),
                        Err(_) => break,
                    }
                }
                Ok::<_, String>(())
            };
            // Within the caller's deadline (a fetch asks for what is there
            // now, so a short one is enough when it has passed).
            let limit = step(deadline).map_or(Duration::from_millis(500), |w| {
                w.max(Duration::from_millis(10))
            });
            match tokio::time::timeout(limit, fetch).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(e)) if transient(&e) => {
                    tracing::debug!(%endpoint, error = %e, "jetstream fetch failed; pulling one");
                }
                Ok(Err(e)) => return Err(io(&endpoint, "receiving", e)),
            }
            if !got.is_empty() {
                return Ok(got);
            }
            Ok(wait_one.await?.into_iter().collect())
        })
    }

    /// The acknowledgement of the message received last.
    pub(crate) fn take_pending(&mut self) -> Option<Pending> {
        self.pending.take().map(|(acker, deliveries)| Pending {
            acker: std::sync::Arc::new(acker),
            deliveries,
        })
    }

    /// Acknowledges the message received last at once (`recv` without a
    /// guard: at most once from here on).
    pub(crate) fn ack_now(&mut self) {
        if let Some((acker, _)) = self.pending.take() {
            spawn_ack(acker, AckKind::Ack);
        }
    }

    /// Ends the message received last for good: it is not another's to
    /// receive (a message of another type, or not from ipcx).
    pub(crate) fn terminate_pending(&mut self) {
        if let Some((acker, _)) = self.pending.take() {
            spawn_ack(acker, AckKind::Term);
        }
    }

    /// What the server says about the queue, its recorded type, and the
    /// producer and consumer handles that answered a roll call.
    pub(crate) fn status(&self) -> Result<(crate::standalone::Status, Option<TypeTag>, Present)> {
        let js = self.js.clone();
        let client = self.client.clone();
        let name = self.stream.clone();
        let ep = self.endpoint.clone();
        let (info, consumer, present) = runtime::run(async move {
            let mut s = js.get_stream(&name).await.map_err(|e| {
                if is_not_found(&e) {
                    missing(&ep)
                } else {
                    io(&ep, "stat", e)
                }
            })?;
            let info = s.info().await.map_err(|e| io(&ep, "stat", e))?.clone();
            let consumer = s.consumer_info(&name).await.ok();
            let present = roll_call(&client, &[&name])
                .await
                .map_err(|e| io(&ep, "stat: the roll call of open handles", e))?;
            Ok::<_, Error>((info, consumer, present))
        })??;
        let c = &info.config;
        let status = status_of(&info, consumer.as_ref(), self.message_size);
        let present = present.get(&c.name).copied().unwrap_or_default();
        Ok((status, recorded(c.description.as_deref()), present))
    }

    /// Drops every message of the stream; how many.
    pub(crate) fn purge(&self) -> Result<usize> {
        let js = self.js.clone();
        let name = self.stream.clone();
        let ep = self.endpoint.clone();
        runtime::run(async move {
            let s = js
                .get_stream(&name)
                .await
                .map_err(|e| io(&ep, "purge", e))?;
            let r = s.purge().await.map_err(|e| io(&ep, "purge", e))?;
            Ok(r.purged as usize)
        })?
    }
}

/// Removes the queue of `endpoint` (its stream and consumer); `false` if
/// there was none.
pub(crate) fn remove(endpoint: &Endpoint) -> Result<bool> {
    let client = options::connect(endpoint)?;
    let name = stream_name(parts(endpoint).1);
    let ep = endpoint.clone();
    runtime::run(async move {
        let jsx = js::new(client);
        match jsx.delete_stream(&name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(io(&ep, "removing the queue's stream", e)),
        }
    })?
}

/// The open handles of a queue that answered a roll call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Present {
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
}

/// The next item of a stream (a subscription, a pull's batch).
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// Subscribes `client` to the roll call of `stream` and answers every
/// request with the opener's role until the returned task is aborted.
fn answer_roll_calls(
    endpoint: &Endpoint,
    client: &Client,
    stream: &str,
    opener: Opener,
) -> Result<tokio::task::AbortHandle> {
    let client = client.clone();
    let subject = roll_call_subject(stream);
    let role = if opener == Opener::Consumer {
        "consumer"
    } else {
        "producer"
    };
    // The handle's own id: the asker counts each handle once, however
    // often its answer arrives.
    let answer = Bytes::from(format!("{role} {stream} {}", nuid::next()));
    let ep = endpoint.clone();
    runtime::run(async move {
        let what = "subscribing to the queue's roll call";
        let mut sub = client
            .subscribe(subject)
            .await
            .map_err(|e| io(&ep, what, e))?;
        // The server has the subscription before the open returns: a
        // roll call made after it counts this handle.
        client.flush().await.map_err(|e| io(&ep, what, e))?;
        let task = tokio::spawn(async move {
            let (mut window, mut answered) = (tokio::time::Instant::now(), 0u32);
            while let Some(m) = next(&mut sub).await {
                let Some(reply) = m.reply else { continue };
                if !reply.starts_with(ROLL_CALL_REPLY_PREFIX) {
                    continue;
                }
                if window.elapsed() >= Duration::from_secs(1) {
                    (window, answered) = (tokio::time::Instant::now(), 0);
                }
                if answered >= ROLL_CALL_ANSWERS_PER_SECOND {
                    continue;
                }
                answered += 1;
                let _ = client.publish(reply, answer.clone()).await;
            }
        });
        Ok(task.abort_handle())
    })?
}

/// Asks the open handles of the queues whose streams are `streams` to
/// answer (all at once, to one inbox), and counts the answers that come
/// within [`ROLL_CALL_WAIT`], by stream.
async fn roll_call(
    client: &Client,
    streams: &[&str],
) -> std::result::Result<std::collections::HashMap<String, Present>, String> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    for stream in streams {
        client
            .publish_with_reply(roll_call_subject(stream), inbox.clone(), Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
    }
    client.flush().await.map_err(|e| e.to_string())?;
    let end = tokio::time::Instant::now() + ROLL_CALL_WAIT;
    // Only the streams asked about, each handle (its id) once.
    let mut seen: std::collections::HashMap<&str, std::collections::HashSet<(bool, String)>> =
        streams.iter().map(|s| (*s, Default::default())).collect();
    while let Ok(Some(m)) = tokio::time::timeout_at(end, next(&mut sub)).await {
        // Anything else (the server's "no responders", an answer of an
        // earlier version without an id) is no answer.
        let text = String::from_utf8_lossy(&m.payload);
        let mut words = text.split(' ');
        let (Some(role), Some(stream), Some(id), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let producer = match role {
            "producer" => true,
            "consumer" => false,
            _ => continue,
        };
        if let Some(ids) = seen.get_mut(stream)
            && ids.len() < ROLL_CALL_MAX_ANSWERS
        {
            ids.insert((producer, id.to_string()));
        }
    }
    Ok(seen
        .into_iter()
        .map(|(stream, ids)| {
            let producers = ids.iter().filter(|(p, _)| *p).count();
            let present = Present {
                producers,
                consumers: ids.len() - producers,
            };
            (stream.to_string(), present)
        })
        .collect())
}

/// The status of a queue from its stream's (and consumer's) information.
fn status_of(
    info: &stream::Info,
    consumer: Option<&async_nats::jetstream::consumer::Info>,
    message_size: usize,
) -> crate::standalone::Status {
    let c = &info.config;
    crate::standalone::Status {
        messages: info.state.messages as usize,
        bytes: Some(info.state.bytes as usize),
        capacity_messages: (c.max_messages > 0).then_some(c.max_messages as usize),
        capacity_bytes: (c.max_bytes > 0).then_some(c.max_bytes as usize),
        message_size: if c.max_message_size > 0 {
            c.max_message_size as usize
        } else {
            message_size
        },
        mode: 0,
        owner_uid: 0,
        last_sender: None,
        last_receiver: None,
        jetstream: Some(crate::standalone::JetStreamStatus {
            stream: c.name.clone(),
            replicas: c.num_replicas,
            leader: info.cluster.as_ref().and_then(|cl| cl.leader.clone()),
            ack_pending: consumer.map(|ci| ci.num_ack_pending),
            redelivered: consumer.map(|ci| ci.num_redelivered),
            ack_wait: consumer.map(|ci| ci.config.ack_wait),
            last_stored: (info.state.messages > 0 || info.state.last_sequence > 0).then(|| {
                let t = info.state.last_timestamp;
                std::time::UNIX_EPOCH
                    + Duration::new(t.unix_timestamp().max(0) as u64, t.nanosecond())
            }),
        }),
    }
}

/// Every stream on the server of `endpoint` (its name is not used): the
/// ipcx queues with their status, recorded type and the handles that
/// answered a roll call, and the names of the other streams.
pub(crate) fn list(endpoint: &Endpoint) -> Result<crate::standalone::BrokerListing> {
    let client = options::connect(endpoint)?;
    let ep = endpoint.clone();
    let (servers, _) = parts(endpoint);
    let servers = servers.to_string();
    runtime::run(async move {
        let jsx = js::new(client.clone());
        let mut streams = jsx.streams();
        let mut infos = Vec::new();
        while let Some(info) = next(&mut streams).await {
            infos.push(info.map_err(|e| io(&ep, "listing the server's JetStream streams", e))?);
        }
        let names: Vec<&str> = infos
            .iter()
            .map(|i| i.config.name.as_str())
            .filter(|n| n.starts_with(STREAM_PREFIX))
            .collect();
        let present = roll_call(&client, &names)
            .await
            .map_err(|e| io(&ep, "the roll call of open queue handles", e))?;
        let mut listing = crate::standalone::BrokerListing::default();
        for info in infos {
            let c = &info.config;
            let ipcx = c
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with(DESCRIPTION));
            let name = queue_name(&c.name).filter(|n| ipcx && c.subjects == [subject(n)]);
            let Some(name) = name else {
                listing.other_streams.push(c.name.clone());
                continue;
            };
            let Ok(queue) = format!("nats://{servers}/{name}?pattern=queue").parse::<Endpoint>()
            else {
                listing.other_streams.push(c.name.clone());
                continue;
            };
            let p = present.get(&c.name).copied().unwrap_or_default();
            listing.queues.push((
                queue,
                crate::standalone::QueueInfo {
                    status: status_of(&info, None, 0),
                    recorded: recorded(c.description.as_deref()),
                    recorded_endpoint: None,
                    producers: Some(p.producers),
                    consumers: Some(p.consumers),
                },
            ));
        }
        listing
            .queues
            .sort_by(|a, b| a.0.address().cmp(b.0.address()));
        listing.other_streams.sort();
        Ok(listing)
    })?
}

fn config_subject(name: &str) -> String {
    subject(name)
}

fn passed(deadline: Deadline) -> bool {
    match deadline {
        Deadline::Never => false,
        Deadline::Now => true,
        Deadline::At(_) => deadline.remaining().is_none_or(|d| d.is_zero()),
    }
}

/// A stream that refuses a message because it is full.
fn full(e: &str) -> bool {
    e.contains("maximum messages") || e.contains("maximum bytes") || e.contains("resource limits")
}

/// A failure that passes: the connection is being re-established or the
/// cluster elects a leader.
fn transient(e: &str) -> bool {
    e.contains("timed out")
        || e.contains("broken pipe")
        || e.contains("no responders")
        || e.contains("leader")
        || e.contains("disconnected")
        || e.contains("503")
}

fn spawn_ack(acker: Acker, kind: AckKind) {
    if let Ok(h) = runtime::handle() {
        h.spawn(async move {
            let _ = acker.ack_with(kind).await;
        });
    }
}

/// Options given on the endpoint must agree with the queue as it exists.
fn check_config(
    endpoint: &Endpoint,
    config: &stream::Config,
    consumer: Option<&async_nats::jetstream::consumer::Info>,
) -> Result<()> {
    let o = endpoint.options();
    let differs = |option: &str, asked: String, has: String| {
        Err(Error::Unsupported {
            scheme: ipc_core::Scheme::Nats,
            reason: format!(
                "{endpoint}: the queue exists with {option}={has}, this endpoint asks for {option}={asked}; give every opener the creator's {option}= (or leave it out), or remove and recreate the queue"
            ),
        })
    };
    if config.retention != RetentionPolicy::WorkQueue {
        return Err(Error::Unsupported {
            scheme: ipc_core::Scheme::Nats,
            reason: format!(
                "{endpoint}: the JetStream stream {} exists but is not an ipcx queue (its retention is not work-queue); choose another name",
                config.name
            ),
        });
    }
    if let Some(r) = o.replicas
        && r as usize != config.num_replicas.max(1)
    {
        return differs("replicas", r.to_string(), config.num_replicas.to_string());
    }
    if let Some(c) = o.capacity
        && c as i64 != config.max_messages
    {
        return differs("capacity", c.to_string(), config.max_messages.to_string());
    }
    if let Some(b) = o.max_bytes
        && b as i64 != config.max_bytes
    {
        return differs("max_bytes", b.to_string(), config.max_bytes.to_string());
    }
    if let (Some(w), Some(ci)) = (o.ack_wait, consumer)
        && w != ci.config.ack_wait
    {
        return differs(
            "ack_wait",
            format!("{w:?}"),
            format!("{:?}", ci.config.ack_wait),
        );
    }
    Ok(())
}

/// The acknowledgement of a message received from a JetStream queue,
/// held by [`crate::standalone::Ack`].
pub(crate) struct Pending {
    acker: std::sync::Arc<Acker>,
    deliveries: u64,
}

/// What becomes of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Handled: remove it from the queue.
    Ack,
    /// Not handled: deliver it again now.
    Nak,
    /// Still being handled: start its `ack_wait` again.
    Progress,
}

impl Pending {
    /// How many times the message was delivered, this time included.
    pub(crate) fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Tells the server; with `confirm`, waits for it to confirm (blocking
    /// this thread).
    pub(crate) fn settle(&self, how: Settle, confirm: bool) -> Result<()> {
        if !confirm {
            let kind = kind(how);
            let acker = std::sync::Arc::clone(&self.acker);
            if let Ok(h) = runtime::handle() {
                h.spawn(async move {
                    let _ = acker.ack_with(kind).await;
                });
            }
            return Ok(());
        }
        runtime::run(self.confirmed(how))?
    }

    /// Tells the server and awaits its confirmation without blocking the
    /// thread: the exchange runs on the runtime ipcx owns, and goes on
    /// there if this future is dropped.
    pub(crate) async fn settle_async(&self, how: Settle) -> Result<()> {
        runtime::handle()?
            .spawn(self.confirmed(how))
            .await
            .map_err(|e| {
                Error::io(
                    "nats: acknowledging a queue message",
                    std::io::Error::other(e),
                )
            })?
    }

    /// The confirmed settlement, as a future for the runtime ipcx owns.
    fn confirmed(
        &self,
        how: Settle,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static + use<> {
        let kind = kind(how);
        let acker = std::sync::Arc::clone(&self.acker);
        async move {
            // A cluster electing a new leader answers nothing for a
            // moment: the same acknowledgement is sent again (the server
            // takes it once).
            let mut last = String::new();
            for _ in 0..ACK_TRIES {
                match tokio::time::timeout(STEP, acker.double_ack_with(kind)).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = "the server did not confirm in time".to_string(),
                }
                if !transient(&last) && !last.contains("did not confirm") {
                    break;
                }
            }
            Err(Error::io(
                "nats: acknowledging a queue message",
                std::io::Error::other(format!(
                    "{last}; the message may be delivered again (after ack_wait)"
                )),
            ))
        }
    }
}

/// Settles every one of `pending` as `how` and waits for every
/// confirmation: the exchanges run side by side, so the lot takes about
/// one round trip. The first failure, once all are done.
pub(crate) fn confirm_all(
    pending: Vec<Pending>,
    how: Settle,
) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
    let each: Vec<_> = pending.iter().map(|p| p.confirmed(how)).collect();
    async move {
        let tasks: Vec<_> = each.into_iter().map(tokio::spawn).collect();
        let mut outcome = Ok(());
        for t in tasks {
            let r = t.await.unwrap_or_else(|e| {
                Err(Error::io(
                    "nats: acknowledging a queue message",
                    std::io::Error::other(e),
                ))
            });
            if outcome.is_ok() {
                outcome = r;
            }
        }
        outcome
    }
}

fn kind(how: Settle) -> AckKind {
    match how {
        Settle::Ack => AckKind::Ack,
        Settle::Nak => AckKind::Nak(None),
        Settle::Progress => AckKind::Progress,
    }
}
