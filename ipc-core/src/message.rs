//! Message types: the [`IpcMessage`] trait, the [`ZeroCopy`] marker and the
//! structural fingerprints the handshake compares.
//!
//! A message type is normally derived:
//!
//! ```
//! use ipc_core::message::{Encoding, IpcMessage};
//! use serde::{Deserialize, Serialize};
//!
//! // Any shape serde supports, encoded with postcard.
//! #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
//! #[ipc(name = "shop.Order")]
//! struct Order {
//!     id: u64,
//!     items: Vec<String>,
//! }
//!
//! // Plain data, moved as its raw bytes (in place on shared memory).
//! #[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
//! #[ipc(zero_copy)]
//! #[repr(C)]
//! struct Tick {
//!     price: f64,
//!     qty: u32,
//!     side: u8,
//!     _pad: [u8; 3],
//! }
//!
//! let mut buf = Vec::new();
//! let order = Order { id: 7, items: vec!["tea".into()] };
//! order.encode(&mut buf).unwrap();
//! assert_eq!(Order::decode(&buf).unwrap(), order);
//! assert_eq!(Order::NAME, "shop.Order");
//! assert_eq!(Tick::ENCODING, Encoding::ZeroCopy);
//! assert_ne!(Order::FINGERPRINT, Tick::FINGERPRINT);
//! ```
//!
//! # Fingerprints
//!
//! [`IpcMessage::FINGERPRINT`] is computed at compile time by hashing
//! ([`Fnv64`], FNV-1a 64) a canonical description of the type: a scheme
//! version, the wire name, the encoding, the shape (struct, tuple struct,
//! unit struct, enum and its variants), every field's name and the
//! [`TypeFingerprint`] of its type, and for zero-copy types also the target's
//! byte order, the size, the alignment and every field's offset. Renaming,
//! reordering, retyping, adding or removing a field changes it; rebuilding,
//! moving the type to another module or crate, or adding derives and
//! comments does not. It is never 0, which the handshake reads as "any type".
//!
//! [`TypeFingerprint`]s of standard types describe their postcard wire shape:
//! `Vec<T>`, `VecDeque<T>`, `[T]` and the sets are all "a sequence of T",
//! `String`, `str` and `Box<str>` are "a string", `Box<T>`, `Rc<T>` and
//! `Arc<T>` are `T`. A derived message type's `TypeFingerprint` is its
//! `FINGERPRINT`, so a change in a nested type propagates to every type that
//! contains it. Recursive types are not supported (their fingerprint would
//! depend on itself).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, LinkedList, VecDeque};
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::handshake::TypeTag;

/// `#[derive(IpcMessage)]`: see [`IpcMessage`](trait@IpcMessage) for its
/// attributes.
#[cfg(feature = "derive")]
pub use ipc_derive::IpcMessage;

/// How a message type travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// serde + postcard: any shape serde supports.
    Postcard,
    /// The raw bytes of a [`ZeroCopy`] type, written and read in place on
    /// shared memory and with a single copy elsewhere.
    ZeroCopy,
}

impl Encoding {
    /// A stable number for this encoding, as it enters fingerprints.
    pub const fn id(self) -> u64 {
        match self {
            Encoding::Postcard => 1,
            Encoding::ZeroCopy => 2,
        }
    }
}

/// A type that can be sent over an ipcx channel.
///
/// Derive it with `#[derive(IpcMessage)]` (re-exported from this crate under
/// the default `derive` feature); implementing it by hand is possible but
/// then keeping [`FINGERPRINT`](IpcMessage::FINGERPRINT) structural is up to
/// the implementor.
///
/// # Derive attributes
///
/// - `#[ipc(zero_copy)]`: [`Encoding::ZeroCopy`]; the type must be
///   `#[repr(C)]` or `#[repr(transparent)]` (fieldless enums: `#[repr(u8)]`
///   and the other integer reprs), `Copy`, without padding, with every field
///   [`ZeroCopy`]. Without it the type needs `Serialize` and
///   `DeserializeOwned` and is encoded with postcard.
/// - `#[ipc(name = "shop.Order")]`: the wire name (default: the type's
///   identifier, without its module path).
/// - `#[ipc(crate = "my_reexport::ipc")]`: the path this crate is reachable
///   at. Without it the derive looks in the deriving crate's manifest:
///   `::ipcx` if it depends on `ipcx`, else `::ipc_core` (under whatever
///   name the manifest gives them).
pub trait IpcMessage: Sized {
    /// The type's wire name, announced in the handshake and used in errors.
    const NAME: &'static str;
    /// The structural fingerprint (see the [module docs](self)); never 0.
    const FINGERPRINT: u64;
    /// How the type is encoded.
    const ENCODING: Encoding;

    /// Appends the encoded message to `buf`. On error `buf` is left as it was.
    ///
    /// # Errors
    /// [`Error::Encode`] when serde refuses the value (zero-copy types never
    /// fail).
    fn encode(&self, buf: &mut Vec<u8>) -> Result<()>;

    /// Decodes a whole message: every byte of `bytes` must belong to it.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the type when `bytes` is truncated, too long
    /// or not a valid value; never a panic, whatever the bytes.
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// The value's wire bytes when they are its own memory (zero-copy
    /// types), so a sender can write them without encoding into a buffer
    /// first; `None` (the default) for encoded types. The derive overrides
    /// it for `#[ipc(zero_copy)]` types.
    #[inline]
    fn wire_bytes(&self) -> Option<&[u8]> {
        None
    }

    /// The type as the handshake announces it: [`NAME`](IpcMessage::NAME)
    /// and [`FINGERPRINT`](IpcMessage::FINGERPRINT).
    fn type_tag() -> TypeTag {
        TypeTag::new(Self::NAME, Self::FINGERPRINT)
    }
}

// ---------------------------------------------------------------------------
// Fingerprints

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
/// tuples, and by `#[derive(IpcMessage)]` for the derived type (as its
/// [`IpcMessage::FINGERPRINT`]). Every field type of a derived message must
/// implement it; for a type of your own that is not a message, build one with
/// [`Fnv64`]:
///
/// ```
/// use ipc_core::message::{Fnv64, TypeFingerprint};
/// struct Celsius(f32);
/// impl TypeFingerprint for Celsius {
///     const TYPE_FINGERPRINT: u64 = Fnv64::new().str("Celsius").u64(f32::TYPE_FINGERPRINT).finish();
/// }
/// ```
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

// ---------------------------------------------------------------------------
// Zero-copy

/// Plain data whose bytes can be sent as they are and viewed in place.
///
/// `#[derive(IpcMessage)]` with `#[ipc(zero_copy)]` implements it after
/// proving the conditions below at compile time; it is implemented here for
/// the integer and float primitives, `bool`, `char`, `()` and arrays of
/// zero-copy types.
///
/// # Safety
///
/// Implementing it promises that:
///
/// - the type is `#[repr(C)]`, `#[repr(transparent)]`, a primitive, an array
///   of zero-copy types or a fieldless enum with an integer `repr`, so its
///   layout is defined;
/// - it has no padding: every byte of a value is initialised, so viewing a
///   value as `&[u8]` is sound;
/// - it holds no pointers, references, file descriptors or heap data: its
///   bytes mean the same in another process;
/// - every field is itself `ZeroCopy`;
/// - [`validate`](ZeroCopy::validate) returns `Ok` only for byte patterns
///   that are a valid value of the type (for types where every pattern is
///   valid the default, always `Ok`, is right);
/// - [`EVERY_BIT_PATTERN_VALID`](ZeroCopy::EVERY_BIT_PATTERN_VALID) is
///   `true` only if every byte pattern of the type's size is a valid value
///   (no `bool`, `char` or enum anywhere inside);
/// - evaluating [`LAYOUT_CHECK`](ZeroCopy::LAYOUT_CHECK) fails to compile
///   when the layout has padding (for generic types, whose layout is known
///   only once instantiated).
pub unsafe trait ZeroCopy: Copy + 'static {
    /// A constant whose evaluation fails to compile if the type, as
    /// instantiated, has padding. The helpers of this module evaluate it.
    #[doc(hidden)]
    const LAYOUT_CHECK: () = ();

    /// Whether every byte pattern of the type's size is a valid value. Only
    /// such types are handed out as references into shared memory
    /// (`Sample<T>` in place): the peer can still write there, and for a
    /// type with invalid patterns (`bool`, enums) a write after validation
    /// could make the reference invalid. Other types are copied out first
    /// and the copy is validated.
    const EVERY_BIT_PATTERN_VALID: bool = false;

    /// Checks that `bytes` (exactly `size_of::<Self>()` of them, at any
    /// alignment) is a valid bit pattern of the type.
    ///
    /// # Errors
    /// [`Error::Decode`] saying which value is invalid, or that the length
    /// is wrong.
    fn validate(bytes: &[u8]) -> Result<()> {
        check_len::<Self>(bytes, std::any::type_name::<Self>())
    }
}

fn check_len<T>(bytes: &[u8], type_name: &'static str) -> Result<()> {
    if bytes.len() == size_of::<T>() {
        Ok(())
    } else {
        Err(Error::Decode {
            type_name,
            reason: format!(
                "expected exactly {} bytes, got {}",
                size_of::<T>(),
                bytes.len()
            ),
        })
    }
}

macro_rules! zero_copy_primitives {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive number has a defined layout, no padding, no
        // pointers, and every bit pattern of its size is a valid value.
        unsafe impl ZeroCopy for $t {
            const EVERY_BIT_PATTERN_VALID: bool = true;
        }
    )*};
}

zero_copy_primitives!(
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
    ()
);

// SAFETY: `bool` is one byte with no padding or pointers; `validate` accepts
// only 0 and 1, its only valid values.
unsafe impl ZeroCopy for bool {
    fn validate(bytes: &[u8]) -> Result<()> {
        match bytes {
            [0 | 1] => Ok(()),
            [b] => Err(Error::Decode {
                type_name: "bool",
                reason: format!("byte {b:#04x} is not a bool (0 or 1)"),
            }),
            _ => check_len::<bool>(bytes, "bool"),
        }
    }
}

// SAFETY: `char` is a `u32` in layout, with no padding or pointers;
// `validate` accepts only Unicode scalar values, its valid values.
unsafe impl ZeroCopy for char {
    fn validate(bytes: &[u8]) -> Result<()> {
        let raw: [u8; 4] = bytes.try_into().map_err(|_| Error::Decode {
            type_name: "char",
            reason: format!("expected exactly 4 bytes, got {}", bytes.len()),
        })?;
        let v = u32::from_ne_bytes(raw);
        match char::from_u32(v) {
            Some(_) => Ok(()),
            None => Err(Error::Decode {
                type_name: "char",
                reason: format!("{v:#x} is not a Unicode scalar value"),
            }),
        }
    }
}

// SAFETY: an array lays its elements out contiguously with no padding
// between them (an element's size is a multiple of its alignment), so with
// `T: ZeroCopy` it has no padding and no pointers; `validate` checks every
// element with `T::validate`.
unsafe impl<T: ZeroCopy, const N: usize> ZeroCopy for [T; N] {
    const LAYOUT_CHECK: () = T::LAYOUT_CHECK;
    const EVERY_BIT_PATTERN_VALID: bool = T::EVERY_BIT_PATTERN_VALID;

    fn validate(bytes: &[u8]) -> Result<()> {
        check_len::<Self>(bytes, std::any::type_name::<Self>())?;
        let size = size_of::<T>();
        if size == 0 {
            return Ok(());
        }
        for (i, element) in bytes.chunks_exact(size).enumerate() {
            T::validate(element).map_err(|e| nested(std::any::type_name::<Self>(), &i, e))?;
        }
        Ok(())
    }
}

/// An error about a part (field, element) of `outer`, re-labelled so that it
/// names `outer` and where in it the bad value is. Used by derived
/// [`ZeroCopy::validate`] implementations.
#[doc(hidden)]
pub fn nested(outer: &'static str, part: &dyn std::fmt::Display, inner: Error) -> Error {
    match inner {
        Error::Decode { reason, .. } => Error::Decode {
            type_name: outer,
            reason: format!("{part}: {reason}"),
        },
        other => other,
    }
}

/// Views `bytes` as a `&T` in place: the shared-memory receive path.
///
/// # Errors
/// [`Error::Decode`] naming `T` when the length is not `size_of::<T>()`, the
/// address is not aligned for `T`, or the bytes are not a valid `T`.
///
/// ```
/// let v = 0x0102_0304u32;
/// let bytes = ipc_core::message::zero_copy_bytes(&v);
/// assert_eq!(*ipc_core::message::zero_copy_ref::<u32>(bytes).unwrap(), v);
/// assert!(ipc_core::message::zero_copy_ref::<bool>(&[2]).is_err());
/// ```
pub fn zero_copy_ref<T: ZeroCopy>(bytes: &[u8]) -> Result<&T> {
    let () = T::LAYOUT_CHECK;
    let type_name = std::any::type_name::<T>();
    check_len::<T>(bytes, type_name)?;
    if bytes.as_ptr().align_offset(align_of::<T>()) != 0 {
        return Err(Error::Decode {
            type_name,
            reason: format!(
                "the bytes are at {:p}, not aligned to {} bytes",
                bytes.as_ptr(),
                align_of::<T>()
            ),
        });
    }
    T::validate(bytes)?;
    let ptr = bytes.as_ptr().cast::<T>();
    // SAFETY:
    // - `ptr` is non-null and valid for reads of `size_of::<T>()` bytes: it
    //   comes from a slice of exactly that length (checked above);
    // - it is aligned for `T` (checked above);
    // - the bytes are a valid `T`: `T::validate` accepted them, which the
    //   `ZeroCopy` contract makes sufficient, and `T` has no pointers or
    //   padding whose contents could matter;
    // - the returned reference borrows `bytes`, so the memory outlives it and
    //   is not mutated through a `&[u8]` while it lives.
    Ok(unsafe { &*ptr })
}

/// Reads a `T` out of `bytes` at any alignment (one copy).
///
/// # Errors
/// [`Error::Decode`] naming `type_name` when the length is not
/// `size_of::<T>()` or the bytes are not a valid `T`.
pub fn zero_copy_read<T: ZeroCopy>(bytes: &[u8], type_name: &'static str) -> Result<T> {
    let () = T::LAYOUT_CHECK;
    check_len::<T>(bytes, type_name)?;
    T::validate(bytes).map_err(|e| relabel(type_name, e))?;
    // SAFETY:
    // - the source is valid for reads of `size_of::<T>()` bytes: the slice
    //   has exactly that length (checked above); `read_unaligned` needs no
    //   alignment;
    // - the bytes are a valid `T`: `T::validate` accepted them, which the
    //   `ZeroCopy` contract makes sufficient;
    // - `T: Copy`, so duplicating it out of the buffer is fine.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

fn relabel(type_name: &'static str, e: Error) -> Error {
    match e {
        Error::Decode {
            type_name: inner,
            reason,
        } if inner != type_name => Error::Decode {
            type_name,
            reason: format!("{inner}: {reason}"),
        },
        other => other,
    }
}

/// The bytes of a zero-copy value, as they are sent: the shared-memory send
/// path copies them into the slot, other transports write them.
pub fn zero_copy_bytes<T: ZeroCopy>(value: &T) -> &[u8] {
    let () = T::LAYOUT_CHECK;
    let ptr = std::ptr::from_ref(value).cast::<u8>();
    // SAFETY:
    // - `ptr` is valid for reads of `size_of::<T>()` bytes and non-null: it
    //   comes from a reference to a `T`;
    // - all those bytes are initialised: `ZeroCopy` promises no padding, and
    //   `LAYOUT_CHECK` (evaluated above) enforces it for generic types;
    // - `u8` has alignment 1;
    // - the slice borrows `value`, which is not mutated while it lives.
    unsafe { std::slice::from_raw_parts(ptr, size_of::<T>()) }
}

/// What `#[derive(IpcMessage)]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;

    use super::{ZeroCopy, check_len, nested};
    use crate::error::{Error, Result};

    /// Checks that `bytes` has the size of `T`, naming `type_name` if not.
    pub fn expect_len<T>(bytes: &[u8], type_name: &'static str) -> Result<()> {
        check_len::<T>(bytes, type_name)
    }

    /// Validates the field of type `F` at `offset` in `bytes`.
    pub fn validate_field<F: ZeroCopy>(
        bytes: &[u8],
        offset: usize,
        outer: &'static str,
        field: &'static str,
    ) -> Result<()> {
        let part = offset
            .checked_add(size_of::<F>())
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| Error::Decode {
                type_name: outer,
                reason: format!(
                    "field `{field}` lies outside the {} bytes given",
                    bytes.len()
                ),
            })?;
        F::validate(part).map_err(|e| nested(outer, &format_args!("field `{field}`"), e))
    }

    /// The error for a zero-copy enum's invalid discriminant.
    pub fn bad_discriminant(type_name: &'static str, value: impl std::fmt::Display) -> Error {
        Error::Decode {
            type_name,
            reason: format!("{value} is not the discriminant of any variant"),
        }
    }
}

// ---------------------------------------------------------------------------
// Postcard

struct AppendTo<'a> {
    buf: &'a mut Vec<u8>,
}

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.buf.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value` encoded with postcard to `buf`; on error `buf` is left as
/// it was. What derived serde-mode messages call.
///
/// # Errors
/// [`Error::Encode`] naming `type_name` when serde refuses the value.
pub fn postcard_encode<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    type_name: &'static str,
) -> Result<()> {
    let start = buf.len();
    postcard::serialize_with_flavor(value, AppendTo { buf: &mut *buf }).map_err(|e| {
        buf.truncate(start);
        Error::Encode {
            type_name,
            reason: e.to_string(),
        }
    })
}

/// Decodes a whole postcard message into a `T`.
///
/// # Errors
/// [`Error::Decode`] naming `type_name` when the bytes end early, do not
/// match the type, or have bytes left over after the message.
pub fn postcard_decode<T: DeserializeOwned>(bytes: &[u8], type_name: &'static str) -> Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::Decode {
            type_name,
            reason: format!(
                "{} bytes left over after the message's {} bytes",
                rest.len(),
                bytes.len() - rest.len()
            ),
        }),
        Err(e) => Err(Error::Decode {
            type_name,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn zero_copy_round_trip_and_validation() {
        let v = [1.5f64, -2.0];
        let bytes = zero_copy_bytes(&v);
        assert_eq!(bytes.len(), 16);
        assert_eq!(zero_copy_read::<[f64; 2]>(bytes, "pair").unwrap(), v);
        assert!(zero_copy_read::<[f64; 2]>(&bytes[1..], "pair").is_err());
        assert!(zero_copy_read::<[bool; 3]>(&[1, 0, 1], "flags").is_ok());
        match zero_copy_read::<[bool; 3]>(&[1, 0, 7], "flags") {
            Err(Error::Decode { type_name, reason }) => {
                assert_eq!(type_name, "flags");
                assert!(reason.contains("2: byte 0x07"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(zero_copy_read::<char>(&0xd800u32.to_ne_bytes(), "c").is_err());
        assert_eq!(
            zero_copy_read::<char>(&65u32.to_ne_bytes(), "c").unwrap(),
            'A'
        );
    }

    #[test]
    fn zero_copy_ref_checks_alignment() {
        let words = [0u64; 2];
        let bytes = zero_copy_bytes(&words);
        assert!(zero_copy_ref::<u64>(&bytes[..8]).is_ok());
        assert!(zero_copy_ref::<u32>(&bytes[1..5]).is_err());
        assert!(zero_copy_ref::<u64>(&bytes[..7]).is_err());
    }

    #[test]
    fn postcard_appends_and_rejects_garbage() {
        let mut buf = vec![9];
        postcard_encode(&(1u32, String::from("x")), &mut buf, "t").unwrap();
        assert_eq!(buf[0], 9);
        let v: (u32, String) = postcard_decode(&buf[1..], "t").unwrap();
        assert_eq!(v, (1, "x".into()));
        assert!(matches!(
            postcard_decode::<(u32, String)>(&buf[1..buf.len() - 1], "t"),
            Err(Error::Decode { type_name: "t", .. })
        ));
        assert!(matches!(
            postcard_decode::<u8>(&[1, 2], "t"),
            Err(Error::Decode { type_name: "t", .. })
        ));
    }
}
