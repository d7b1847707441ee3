//! Checks that the input can be the message its attributes ask for.
//!
//! Zero-copy checks here are the syntactic half of the proof: they reject
//! with a clear message what can never be plain data (references, pointers,
//! heap types, data-carrying enums, missing `repr`). The other half is in the
//! expanded code: trait bounds that every field is `ZeroCopy` and a constant
//! assertion that there is no padding.

use syn::{GenericParam, Type, TypeParamBound, WherePredicate};

use crate::Derive;
use crate::ast::{Data, Field, Input, Style};
use crate::ctxt::Ctxt;

/// The longest wire name the handshake carries (`handshake::MAX_TYPE_NAME`).
const MAX_NAME: usize = 256;

pub fn check(cx: &Ctxt, input: &Input<'_>, which: Derive) {
    if let Data::Union(span) = &input.data {
        let what = match which {
            Derive::IpcMessage => "messages",
            Derive::TypeFingerprint => "message fields",
        };
        cx.syn_error(syn::Error::new(
            *span,
            format!(
                "`{}` is a union: unions cannot be {what} (which field is live is not known); use a struct or an enum",
                input.ident
            ),
        ));
        return;
    }
    if which == Derive::TypeFingerprint {
        if let Some(span) = input.attrs.zero_copy {
            cx.syn_error(syn::Error::new(
                span,
                "`#[ipc(zero_copy)]` belongs to `#[derive(IpcMessage)]`: `#[derive(TypeFingerprint)]` gives only a fingerprint, for types nested in postcard messages",
            ));
        }
    }
    if let Some(name) = &input.attrs.name {
        let value = name.value();
        if value.is_empty() {
            cx.error_spanned_by(name, "the wire name must not be empty");
        } else if value.len() > MAX_NAME {
            cx.error_spanned_by(
                name,
                format!(
                    "the wire name is {} bytes; the handshake carries at most {MAX_NAME}",
                    value.len()
                ),
            );
        }
    }
    if input.attrs.zero_copy.is_some() && which == Derive::IpcMessage {
        zero_copy(cx, input);
    }
}

fn zero_copy(cx: &Ctxt, input: &Input<'_>) {
    let ident = input.ident;
    let repr = &input.attrs.repr;
    match &input.data {
        Data::Struct(_) => {
            if !repr.c && !repr.transparent {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "zero-copy message `{ident}` needs `#[repr(C)]` or `#[repr(transparent)]`: without it Rust may reorder its fields, so its layout differs between builds"
                    ),
                );
            }
        }
        Data::Enum(variants) => {
            if repr.int.is_none() {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "zero-copy enum `{ident}` needs an integer repr such as `#[repr(u8)]`, so that its size and discriminants are fixed"
                    ),
                );
            }
            for v in variants {
                if v.fields.style != Style::Unit {
                    cx.error_spanned_by(
                        v.original,
                        format!(
                            "zero-copy enum `{ident}` cannot carry data, but variant `{}` has fields; make the enum fieldless, or drop `#[ipc(zero_copy)]` to encode it with postcard",
                            v.ident
                        ),
                    );
                }
            }
        }
        Data::Union(_) => {}
    }
    for field in input.all_fields() {
        field_type(cx, ident, field, field.ty);
        if let Some(span) = field.attrs.escape_span() {
            cx.syn_error(syn::Error::new(
                span,
                format!(
                    "field `{}` of zero-copy message `{ident}` cannot be opaque: a zero-copy message's field types are its layout, which the fingerprint must cover; drop `#[ipc(zero_copy)]` to encode it with postcard",
                    field.name
                ),
            ));
        }
    }
    generics(cx, input);
}

/// Rejects, by name, types that can never be plain data. Anything else that
/// is not `ZeroCopy` fails the trait bound the expansion emits.
fn field_type(cx: &Ctxt, ident: &syn::Ident, field: &Field<'_>, ty: &Type) {
    let name = &field.name;
    let what = match ty {
        Type::Reference(_) => Some("a reference: it points into this process's memory"),
        Type::Ptr(_) => Some("a raw pointer: it points into this process's memory"),
        Type::BareFn(_) => Some("a function pointer: it points into this process's code"),
        Type::TraitObject(_) | Type::ImplTrait(_) => Some("a trait object"),
        Type::Slice(_) => Some("a slice, which has no fixed size"),
        Type::Tuple(t) if !t.elems.is_empty() => {
            Some("a tuple, which has no defined layout; use a `#[repr(C)]` struct")
        }
        Type::Array(a) => return field_type(cx, ident, field, &a.elem),
        Type::Group(g) => return field_type(cx, ident, field, &g.elem),
        Type::Paren(p) => return field_type(cx, ident, field, &p.elem),
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().and_then(|seg| match seg.ident.to_string().as_str() {
                "Box" | "Vec" | "String" | "Rc" | "Arc" | "VecDeque" | "HashMap" | "BTreeMap"
                | "HashSet" | "BTreeSet" | "CString" | "OsString" | "PathBuf" => {
                    Some("a heap type: its bytes are a pointer into this process's memory")
                }
                "Option" => Some(
                    "an `Option`, which has no fixed layout (and `Option<&T>` is a pointer); use a flag field beside the value",
                ),
                "OwnedFd" | "File" | "RawFd" | "BorrowedFd" => Some(
                    "a file descriptor, which means nothing in another process",
                ),
                _ => None,
            })
        }
        _ => None,
    };
    if let Some(what) = what {
        cx.error_spanned_by(
            ty,
            format!(
                "field `{name}` of zero-copy message `{ident}` is {what}; zero-copy messages hold plain data only (drop `#[ipc(zero_copy)]` to encode it with postcard)"
            ),
        );
    }
}

fn generics(cx: &Ctxt, input: &Input<'_>) {
    let ident = input.ident;
    for param in &input.generics.params {
        match param {
            GenericParam::Lifetime(l) => cx.error_spanned_by(
                l,
                format!(
                    "zero-copy message `{ident}` cannot have lifetime parameters: it cannot hold references"
                ),
            ),
            GenericParam::Type(t) => {
                let inline = t.bounds.iter().any(is_zero_copy_bound);
                let in_where = input.generics.where_clause.iter().any(|w| {
                    w.predicates.iter().any(|p| match p {
                        WherePredicate::Type(pt) => {
                            matches!(&pt.bounded_ty, Type::Path(tp) if tp.qself.is_none() && tp.path.is_ident(&t.ident))
                                && pt.bounds.iter().any(is_zero_copy_bound)
                        }
                        _ => false,
                    })
                });
                if !inline && !in_where {
                    let param = &t.ident;
                    cx.error_spanned_by(
                        param,
                        format!(
                            "type parameter `{param}` of zero-copy message `{ident}` needs a `{param}: ZeroCopy` bound, so that every instance is provably plain data"
                        ),
                    );
                }
            }
            GenericParam::Const(_) => {}
        }
    }
}

fn is_zero_copy_bound(bound: &TypeParamBound) -> bool {
    matches!(bound, TypeParamBound::Trait(t)
        if t.path.segments.last().is_some_and(|s| s.ident == "ZeroCopy"))
}
