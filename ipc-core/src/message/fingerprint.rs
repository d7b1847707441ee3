//! Structural fingerprints: the [`Fnv64`] hash they are built with and
//! [`TypeFingerprint`] for the standard types (see the
//! [message module docs](super) for what a fingerprint covers).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num;
use std::ops::{Bound, Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// FNV-1a 64, usable in constants: the hash fingerprints are built with.
///
/// Strings are length-prefixed so that `("ab", "c")` and `("a", "bc")` hash
/// differently.
///
/// ```
/// use ipc_core::message::Fnv64;
/// const A: u64 = Fnv64::new().str("point").u64(2).finish();
/// assert_ne!(A, Fnv64::new().str("point").u64(3).finish());
/// assert_ne!(A, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Fnv64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The empty hash.
    pub const fn new() -> Fnv64 {
        Fnv64(Self::OFFSET_BASIS)
    }

    /// Adds raw bytes.
    pub const fn bytes(self, bytes: &[u8]) -> Fnv64 {
        let mut h = self.0;
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(Self::PRIME);
            i += 1;
        }
        Fnv64(h)
    }

    /// Adds a number (8 bytes, little-endian, whatever the target).
    pub const fn u64(self, value: u64) -> Fnv64 {
        self.bytes(&value.to_le_bytes())
    }

    /// Adds a string, prefixed with its length.
    pub const fn str(self, s: &str) -> Fnv64 {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// The hash, never 0 (0 means "any type" in the handshake).
    pub const fn finish(self) -> u64 {
        if self.0 == 0 { 1 } else { self.0 }
    }
}

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64::new()
    }
}

/// The version of the fingerprint scheme; changing how fingerprints are
/// computed bumps it, so old and new builds refuse each other cleanly.
pub const FINGERPRINT_SCHEME: &str = "ipcx.fingerprint.v1";

/// A stable, structural fingerprint of a type as a message field.
///
/// Implemented for the primitives, strings, the standard containers, arrays,
/// tuples, the common standard types a message holds (time, addresses,
/// paths, `NonZero*`, ranges; see the [message module docs](super)), and,
/// behind the features of the same name, for the `uuid`, `chrono`, `time`
/// and `bytes` types. `#[derive(IpcMessage)]` implements it for the derived
/// type (as its [`IpcMessage::FINGERPRINT`](super::IpcMessage::FINGERPRINT));
/// `#[derive(TypeFingerprint)]` implements it for a struct or enum that is
/// only ever nested in messages:
///
/// ```
/// use ipc_core::message::{IpcMessage, TypeFingerprint};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(TypeFingerprint, Serialize, Deserialize)]
/// struct Customer {
///     name: String,
/// }
///
/// #[derive(IpcMessage, Serialize, Deserialize)]
/// struct Order {
///     at: std::time::SystemTime,
///     customer: Customer,
/// }
/// # let _ = Order::FINGERPRINT;
/// ```
///
/// A type whose structure should stay out of the fingerprint can be a field
/// marked `#[ipc(opaque)]` instead (see [`IpcMessage`](super::IpcMessage)).
/// By hand, build the value with [`Fnv64`]:
///
/// ```
/// use ipc_core::message::{Fnv64, TypeFingerprint};
/// struct Celsius(f32);
/// impl TypeFingerprint for Celsius {
///     const TYPE_FINGERPRINT: u64 = Fnv64::new().str("Celsius").u64(f32::TYPE_FINGERPRINT).finish();
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a message field: it does not implement `TypeFingerprint`",
    label = "`{Self}` has no structural fingerprint",
    note = "a type of your own: add `#[derive(TypeFingerprint)]` to it (or `#[derive(IpcMessage)]` if it is a message too)",
    note = "a `uuid`, `chrono`, `time` or `bytes` type: enable the ipcx (or ipc-core) feature of that crate's name; `serde_json::Value`: wrap it in `message::Json` (feature `serde_json`)",
    note = "any other type, in a postcard message: mark the field `#[ipc(opaque)]` or `#[ipc(fingerprint = \"...\")]`; the handshake then no longer notices when that field's type changes"
)]
pub trait TypeFingerprint {
    /// The fingerprint; never 0.
    const TYPE_FINGERPRINT: u64;
}

const fn named(name: &str) -> u64 {
    Fnv64::new().str(FINGERPRINT_SCHEME).str(name).finish()
}

const fn wrapping(name: &str, inner: u64) -> u64 {
    Fnv64::new()
        .str(FINGERPRINT_SCHEME)
        .str(name)
        .u64(inner)
        .finish()
}

macro_rules! primitive_fingerprints {
    ($($t:ty),* $(,)?) => {$(
        impl TypeFingerprint for $t {
            const TYPE_FINGERPRINT: u64 = named(stringify!($t));
        }
    )*};
}

primitive_fingerprints!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);

impl TypeFingerprint for str {
    const TYPE_FINGERPRINT: u64 = named("string");
}

impl TypeFingerprint for String {
    const TYPE_FINGERPRINT: u64 = named("string");
}

impl<T: ?Sized> TypeFingerprint for PhantomData<T> {
    const TYPE_FINGERPRINT: u64 = named("phantom");
}

impl<T: TypeFingerprint> TypeFingerprint for [T] {
    const TYPE_FINGERPRINT: u64 = wrapping("seq", T::TYPE_FINGERPRINT);
}

macro_rules! seq_fingerprints {
    ($($t:ident),*) => {$(
        impl<T: TypeFingerprint> TypeFingerprint for $t<T> {
            const TYPE_FINGERPRINT: u64 = wrapping("seq", T::TYPE_FINGERPRINT);
        }
    )*};
}

seq_fingerprints!(Vec, VecDeque, LinkedList, BTreeSet);

impl<T: TypeFingerprint, S> TypeFingerprint for HashSet<T, S> {
    const TYPE_FINGERPRINT: u64 = wrapping("seq", T::TYPE_FINGERPRINT);
}

impl<K: TypeFingerprint, V: TypeFingerprint> TypeFingerprint for BTreeMap<K, V> {
    const TYPE_FINGERPRINT: u64 = Fnv64::new()
        .str(FINGERPRINT_SCHEME)
        .str("map")
        .u64(K::TYPE_FINGERPRINT)
        .u64(V::TYPE_FINGERPRINT)
        .finish();
}

impl<K: TypeFingerprint, V: TypeFingerprint, S> TypeFingerprint for HashMap<K, V, S> {
    const TYPE_FINGERPRINT: u64 = <BTreeMap<K, V>>::TYPE_FINGERPRINT;
}

macro_rules! transparent_fingerprints {
    ($($t:ident),*) => {$(
        impl<T: TypeFingerprint + ?Sized> TypeFingerprint for $t<T> {
            const TYPE_FINGERPRINT: u64 = T::TYPE_FINGERPRINT;
        }
    )*};
}

transparent_fingerprints!(Box, Rc, Arc);

impl<T: TypeFingerprint + ToOwned + ?Sized> TypeFingerprint for Cow<'_, T> {
    const TYPE_FINGERPRINT: u64 = T::TYPE_FINGERPRINT;
}

impl<T: TypeFingerprint> TypeFingerprint for Option<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("option", T::TYPE_FINGERPRINT);
}

impl<T: TypeFingerprint, E: TypeFingerprint> TypeFingerprint for std::result::Result<T, E> {
    const TYPE_FINGERPRINT: u64 = Fnv64::new()
        .str(FINGERPRINT_SCHEME)
        .str("result")
        .u64(T::TYPE_FINGERPRINT)
        .u64(E::TYPE_FINGERPRINT)
        .finish();
}

impl<T: TypeFingerprint, const N: usize> TypeFingerprint for [T; N] {
    const TYPE_FINGERPRINT: u64 = Fnv64::new()
        .str(FINGERPRINT_SCHEME)
        .str("array")
        .u64(N as u64)
        .u64(T::TYPE_FINGERPRINT)
        .finish();
}

impl TypeFingerprint for std::time::Duration {
    const TYPE_FINGERPRINT: u64 = named("duration");
}

impl<T: TypeFingerprint> TypeFingerprint for BinaryHeap<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("seq", T::TYPE_FINGERPRINT);
}

// Interior mutability and locks serialize as their content, like `Box`.
transparent_fingerprints!(Cell, RefCell, Mutex, RwLock);

// Standard types whose wire shape serde fixes: their name stands for it.
// Each is distinct from the type it is encoded like (`PathBuf` from
// `String`, `Ipv4Addr` from `[u8; 4]`), so swapping one for the other is
// noticed even when the bytes would still decode.
macro_rules! std_fingerprints {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl TypeFingerprint for $t {
            const TYPE_FINGERPRINT: u64 = named($name);
        }
    )*};
}

std_fingerprints!(
    SystemTime => "system_time",
    IpAddr => "ip_addr",
    Ipv4Addr => "ipv4_addr",
    Ipv6Addr => "ipv6_addr",
    SocketAddr => "socket_addr",
    SocketAddrV4 => "socket_addr_v4",
    SocketAddrV6 => "socket_addr_v6",
    PathBuf => "path",
    Path => "path",
    OsString => "os_string",
    OsStr => "os_string",
    CString => "c_string",
    CStr => "c_string",
);

// `NonZeroU32` is not `u32`: decoding refuses 0. The inner primitive is hashed too.
macro_rules! nonzero_fingerprints {
    ($($t:ident($inner:ty)),* $(,)?) => {$(
        impl TypeFingerprint for num::$t {
            const TYPE_FINGERPRINT: u64 = wrapping("nonzero", <$inner>::TYPE_FINGERPRINT);
        }
    )*};
}

nonzero_fingerprints!(
    NonZeroU8(u8),
    NonZeroU16(u16),
    NonZeroU32(u32),
    NonZeroU64(u64),
    NonZeroU128(u128),
    NonZeroUsize(usize),
    NonZeroI8(i8),
    NonZeroI16(i16),
    NonZeroI32(i32),
    NonZeroI64(i64),
    NonZeroI128(i128),
    NonZeroIsize(isize),
);

impl<T: TypeFingerprint> TypeFingerprint for num::Wrapping<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("wrapping", T::TYPE_FINGERPRINT);
}

impl<T: TypeFingerprint> TypeFingerprint for std::cmp::Reverse<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("reverse", T::TYPE_FINGERPRINT);
}

impl<T: TypeFingerprint> TypeFingerprint for Range<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("range", T::TYPE_FINGERPRINT);
}

impl<T: TypeFingerprint> TypeFingerprint for RangeInclusive<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("range_inclusive", T::TYPE_FINGERPRINT);
}

impl<T: TypeFingerprint> TypeFingerprint for Bound<T> {
    const TYPE_FINGERPRINT: u64 = wrapping("bound", T::TYPE_FINGERPRINT);
}

macro_rules! tuple_fingerprints {
    ($($name:ident)+) => {
        impl<$($name: TypeFingerprint),+> TypeFingerprint for ($($name,)+) {
            const TYPE_FINGERPRINT: u64 = Fnv64::new()
                .str(FINGERPRINT_SCHEME)
                .str("tuple")
                $(.u64($name::TYPE_FINGERPRINT))+
                .finish();
        }
    };
}

tuple_fingerprints!(A);
tuple_fingerprints!(A B);
tuple_fingerprints!(A B C);
tuple_fingerprints!(A B C D);
tuple_fingerprints!(A B C D E);
tuple_fingerprints!(A B C D E F);
tuple_fingerprints!(A B C D E F G);
tuple_fingerprints!(A B C D E F G H);
tuple_fingerprints!(A B C D E F G H I);
tuple_fingerprints!(A B C D E F G H I J);
tuple_fingerprints!(A B C D E F G H I J K);
tuple_fingerprints!(A B C D E F G H I J K L);

// Ecosystem types, behind the features of their crates' names (off by
// default). Each is hashed by its crate and type name, which stand for the
// wire shape its serde impl gives it under postcard.

#[cfg(feature = "uuid")]
std_fingerprints!(uuid::Uuid => "uuid::Uuid");

#[cfg(feature = "chrono")]
std_fingerprints!(
    chrono::NaiveDateTime => "chrono::NaiveDateTime",
    chrono::NaiveDate => "chrono::NaiveDate",
    chrono::NaiveTime => "chrono::NaiveTime",
);

/// Any time zone: every `DateTime` is sent as the same RFC 3339 string.
#[cfg(feature = "chrono")]
impl<Tz: chrono::TimeZone> TypeFingerprint for chrono::DateTime<Tz> {
    const TYPE_FINGERPRINT: u64 = named("chrono::DateTime");
}

#[cfg(feature = "time")]
std_fingerprints!(
    time::OffsetDateTime => "time::OffsetDateTime",
    time::PrimitiveDateTime => "time::PrimitiveDateTime",
    time::Date => "time::Date",
    time::Time => "time::Time",
    time::UtcOffset => "time::UtcOffset",
    time::Duration => "time::Duration",
);

#[cfg(feature = "bytes")]
std_fingerprints!(
    bytes::Bytes => "bytes",
    bytes::BytesMut => "bytes",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn fnv_matches_reference_vectors() {
        // FNV-1a 64 of "" and "a".
        assert_eq!(Fnv64::new().0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv64::new().bytes(b"a").0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn primitive_fingerprints_are_distinct() {
        let all = [
            u8::TYPE_FINGERPRINT,
            u16::TYPE_FINGERPRINT,
            u32::TYPE_FINGERPRINT,
            i32::TYPE_FINGERPRINT,
            f32::TYPE_FINGERPRINT,
            bool::TYPE_FINGERPRINT,
            String::TYPE_FINGERPRINT,
            <Vec<u8>>::TYPE_FINGERPRINT,
            <Vec<u16>>::TYPE_FINGERPRINT,
            <[u8; 4]>::TYPE_FINGERPRINT,
            <[u8; 5]>::TYPE_FINGERPRINT,
            <Option<u8>>::TYPE_FINGERPRINT,
            <(u8, u16)>::TYPE_FINGERPRINT,
            <(u16, u8)>::TYPE_FINGERPRINT,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(*a, 0);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(String::TYPE_FINGERPRINT, <Box<str>>::TYPE_FINGERPRINT);
        assert_eq!(
            <Vec<u8>>::TYPE_FINGERPRINT,
            <VecDeque<u8>>::TYPE_FINGERPRINT
        );
    }
}
