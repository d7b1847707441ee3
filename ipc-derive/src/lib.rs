//! `#[derive(IpcMessage)]` and `#[derive(TypeFingerprint)]` for ipcx.
//!
//! Use it through `ipc_core` (or `ipcx`), which re-exports it; the trait, the
//! attributes and the fingerprint scheme are documented on
//! `ipc_core::message::IpcMessage`.
//!
//! The derive is a pipeline, one file per stage: `ast` parses the input,
//! `attr` reads the `#[ipc(...)]` and `#[repr(...)]` attributes, `valid`
//! checks what the chosen encoding needs, `expand` writes the code. Every
//! stage records its errors in a `ctxt::Ctxt` and goes on, so all mistakes
//! are reported together, each at its span.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `IpcMessage` and `TypeFingerprint` (and, with
/// `#[ipc(zero_copy)]`, `ZeroCopy`).
///
/// See `ipc_core::message::IpcMessage` for the attributes.
#[proc_macro_derive(IpcMessage, attributes(ipc))]
pub fn derive_ipc_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input, Derive::IpcMessage)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `TypeFingerprint` for a type nested in messages.
///
/// See `ipc_core::message::TypeFingerprint`.
#[proc_macro_derive(TypeFingerprint, attributes(ipc))]
pub fn derive_type_fingerprint(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input, Derive::TypeFingerprint)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Which derive is running.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Derive {
    IpcMessage,
    TypeFingerprint,
}

fn derive(input: &DeriveInput, which: Derive) -> syn::Result<proc_macro2::TokenStream> {
    let cx = ctxt::Ctxt::new();
    let parsed = ast::Input::from_syn(&cx, input);
    valid::check(&cx, &parsed, which);
    cx.check()?;
    Ok(match which {
        Derive::IpcMessage => expand::expand(&parsed),
        Derive::TypeFingerprint => expand::expand_type_fingerprint(&parsed),
    })
}
