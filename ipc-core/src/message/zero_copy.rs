//! Zero-copy messages: the [`ZeroCopy`] marker and the helpers that view,
//! read and write such values as their raw bytes.

use std::mem::{align_of, size_of};

use crate::error::{Error, Result};

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

pub(super) fn check_len<T>(bytes: &[u8], type_name: &'static str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
