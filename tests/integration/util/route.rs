//! How a suite reaches the transport under test: through the endpoint's
//! scheme ([`ByEndpoint`], the run-time `Any*` dispatch of `ipcx::listen`
//! and `ipcx::connect`) or through a [`Transport`] type ([`ByType`]), so one
//! case, written as `fn case<R: Route>(test, ep)`, checks both.

use std::marker::PhantomData;
use std::process::{Child, Command};

use ipcx::{AnyChannel, AnyListener, Channel, Endpoint, Listener, Result, Schema, Transport};

/// A way to listen on and connect to an endpoint. Channels and their halves
/// are `'static`, so cases can move them to threads.
pub trait Route: 'static {
    /// What [`Route::listen`] gives.
    type Listener: Listener<Channel = Self::Channel> + 'static;
    /// What [`Route::connect`] and [`Listener::accept`] give.
    type Channel: Channel<Sender: 'static, Receiver: 'static> + std::fmt::Debug + 'static;

    /// Listens on `endpoint`, announcing `schema`.
    fn listen_with(endpoint: &Endpoint, schema: &Schema) -> Result<Self::Listener>;

    /// Connects to `endpoint`, announcing `schema`.
    fn connect_with(endpoint: &Endpoint, schema: &Schema) -> Result<Self::Channel>;

    /// Starts `command` as a child joined to this process by `pipe:`
    /// (which has no listener), announcing `schema`.
    fn spawn_with(
        command: Command,
        endpoint: &Endpoint,
        schema: &Schema,
    ) -> Result<(Child, Self::Channel)>;

    /// Listens on `endpoint` for raw bytes.
    fn listen(endpoint: &Endpoint) -> Result<Self::Listener> {
        Self::listen_with(endpoint, &Schema::bytes())
    }

    /// Connects to `endpoint` for raw bytes.
    fn connect(endpoint: &Endpoint) -> Result<Self::Channel> {
        Self::connect_with(endpoint, &Schema::bytes())
    }
}

/// The transport the endpoint's scheme names, chosen at run time
/// (`ipcx::listen`, `ipcx::connect`, `ipcx::spawn`).
pub struct ByEndpoint;

impl Route for ByEndpoint {
    type Listener = AnyListener;
    type Channel = AnyChannel;

    fn listen_with(endpoint: &Endpoint, schema: &Schema) -> Result<AnyListener> {
        ipcx::listen_with(endpoint, schema)
    }

    fn connect_with(endpoint: &Endpoint, schema: &Schema) -> Result<AnyChannel> {
        ipcx::connect_with(endpoint, schema)
    }

    fn spawn_with(
        command: Command,
        endpoint: &Endpoint,
        schema: &Schema,
    ) -> Result<(Child, AnyChannel)> {
        ipcx::spawn_with(command, endpoint, schema)
    }
}

/// Transport `T` itself, named by its type (`T::listen`, `T::connect`);
/// the endpoint must be one of `T`'s.
pub struct ByType<T>(PhantomData<T>);

impl<T> Route for ByType<T>
where
    T: Transport + 'static,
    T::Listener: 'static,
    T::Channel: std::fmt::Debug + 'static,
    <T::Channel as Channel>::Sender: 'static,
    <T::Channel as Channel>::Receiver: 'static,
{
    type Listener = T::Listener;
    type Channel = T::Channel;

    fn listen_with(endpoint: &Endpoint, schema: &Schema) -> Result<T::Listener> {
        T::listen(endpoint, schema)
    }

    fn connect_with(endpoint: &Endpoint, schema: &Schema) -> Result<T::Channel> {
        T::connect(endpoint, schema)
    }

    /// Never called: the parent's end of `pipe:` is made by `ipcx::spawn`,
    /// not by a `Transport` (whose `listen` `pipe::Pipe` refuses), so
    /// `matrix!` runs `pipe:` on [`ByEndpoint`] only.
    fn spawn_with(_: Command, endpoint: &Endpoint, _: &Schema) -> Result<(Child, T::Channel)> {
        panic!(
            "{endpoint}: a Transport type cannot spawn its peer; pipe: runs on the endpoint route only"
        )
    }
}
