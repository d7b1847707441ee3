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
//! `String`, `str` and `Box<str>` are "a string", `Box<T>`, `Rc<T>`,
//! `Arc<T>`, `Cell<T>`, `RefCell<T>`, `Mutex<T>` and `RwLock<T>` are `T`.
//! Types whose wire shape serde fixes (`SystemTime`, `Duration`, the
//! `std::net` addresses, `PathBuf`/`Path`, `OsString`, `CString`, and behind
//! features the `uuid`, `chrono`, `time` and `bytes` types) are hashed by
//! name; `NonZeroU32`, `Wrapping<T>`, `Reverse<T>`, `Range<T>`,
//! `RangeInclusive<T>` and `Bound<T>` by name and their inner type. A
//! derived message type's `TypeFingerprint` is its `FINGERPRINT`, and
//! `#[derive(TypeFingerprint)]` gives a nested non-message type the same
//! value, so a change in a nested type propagates to every type that
//! contains it. Recursive types are not supported (their fingerprint would
//! depend on itself).

mod fingerprint;
#[cfg(feature = "serde_json")]
mod json;
mod postcard;
mod zero_copy;

use crate::error::Result;
use crate::handshake::TypeTag;

pub use self::postcard::{postcard_decode, postcard_encode};
pub use fingerprint::{FINGERPRINT_SCHEME, Fnv64, TypeFingerprint};
#[cfg(feature = "serde_json")]
pub use json::Json;
#[doc(hidden)]
pub use zero_copy::nested;
pub use zero_copy::{ZeroCopy, zero_copy_bytes, zero_copy_read, zero_copy_ref};

/// `#[derive(IpcMessage)]`: see [`IpcMessage`](trait@IpcMessage) for its
/// attributes.
#[cfg(feature = "derive")]
pub use ipc_derive::IpcMessage;

/// `#[derive(TypeFingerprint)]`: a structural [`TypeFingerprint`](trait@TypeFingerprint)
/// for a struct or enum nested in messages without being one itself.
///
/// The value is the one `#[derive(IpcMessage)]` would give the type as a
/// postcard message (its wire name, fields and their types' fingerprints),
/// so switching a type between the two derives keeps its fingerprint. It
/// takes `#[ipc(name = "...")]`, `#[ipc(crate = "...")]` and the field
/// attributes `#[ipc(opaque)]` and `#[ipc(fingerprint = "...")]`, as
/// described on [`IpcMessage`](trait@IpcMessage); serde is not required.
#[cfg(feature = "derive")]
pub use ipc_derive::TypeFingerprint;

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
/// # Examples
///
/// ```
/// use ipc_core::message::{Encoding, IpcMessage};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
/// struct Order { id: u64, item: String }
///
/// #[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
/// #[ipc(zero_copy)]
/// #[repr(C)]
/// struct Quote { bid: f64, ask: f64 }
///
/// assert_eq!(Order::ENCODING, Encoding::Postcard);
/// assert_eq!(Quote::ENCODING, Encoding::ZeroCopy);
/// let mut buf = Vec::new();
/// let order = Order { id: 1, item: "tea".into() };
/// order.encode(&mut buf).unwrap();
/// assert_eq!(Order::decode(&buf).unwrap(), order);
/// // Zero-copy types travel as their bytes.
/// let q = Quote { bid: 1.0, ask: 1.5 };
/// assert_eq!(q.wire_bytes().map(<[u8]>::len), Some(16));
/// ```
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
///
/// On a field (postcard messages and `#[derive(TypeFingerprint)]` types
/// only; refused on zero-copy messages, whose field types are their layout):
///
/// - `#[ipc(opaque)]`: the field's type needs no [`TypeFingerprint`]; the
///   fingerprint takes the field's name and the type's name as written,
///   last path segment only (`Uuid` for `uuid::Uuid`, `Foreign` for
///   `Foreign<u8>`) instead of its structure.
/// - `#[ipc(fingerprint = "orders-v2")]`: the same with the given string in
///   place of the type's name; bump it by hand when the type changes.
///
/// What the escape hatch gives up: a change inside that field's type (its
/// fields, their types, its generic arguments) no longer changes the
/// fingerprint, so peers built with different versions connect and then
/// fail to decode, or decode wrong values. Renaming the field, moving it,
/// or changing the type's name or the string still does.
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
    /// [`Error::Encode`](crate::Error::Encode) when serde refuses the value (zero-copy types never
    /// fail).
    fn encode(&self, buf: &mut Vec<u8>) -> Result<()>;

    /// Decodes a whole message: every byte of `bytes` must belong to it.
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) naming the type when `bytes` is truncated, too long
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

/// What `#[derive(IpcMessage)]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;

    use super::zero_copy::check_len;
    use super::{ZeroCopy, nested};
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
