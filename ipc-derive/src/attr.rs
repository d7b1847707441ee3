//! The `#[ipc(...)]` and `#[repr(...)]` attributes.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Path};

use crate::ctxt::Ctxt;

/// What the container's attributes say.
#[derive(Default)]
pub struct Attrs {
    /// `#[ipc(zero_copy)]`, at its span.
    pub zero_copy: Option<Span>,
    /// `#[ipc(name = "...")]`.
    pub name: Option<LitStr>,
    /// `#[ipc(crate = "...")]`.
    pub krate: Option<Path>,
    pub repr: Repr,
}

/// The `#[repr(...)]` hints that matter for zero-copy layouts.
#[derive(Default)]
pub struct Repr {
    pub c: bool,
    pub transparent: bool,
    /// `u8`, `i32`, … for fieldless enums.
    pub int: Option<Ident>,
}

/// What a field's `#[ipc(...)]` attributes say.
#[derive(Default)]
pub struct FieldAttrs {
    /// `#[ipc(opaque)]`, at its span.
    pub opaque: Option<Span>,
    /// `#[ipc(fingerprint = "...")]`: the key's span and the string.
    pub fingerprint: Option<(Span, String)>,
}

impl FieldAttrs {
    /// Where the field's escape hatch is written, if it has one.
    pub fn escape_span(&self) -> Option<Span> {
        self.opaque
            .or(self.fingerprint.as_ref().map(|(span, _)| *span))
    }
}

const KEYS: &str = "expected `zero_copy`, `name = \"...\"` or `crate = \"...\"`";

pub fn container(cx: &Ctxt, attrs: &[Attribute]) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs {
        if attr.path().is_ident("repr") {
            // rustc itself reports malformed reprs; ignore what we cannot read.
            let _ = attr.parse_nested_meta(|meta| {
                repr_item(&mut out.repr, &meta);
                skip_value(&meta)
            });
            continue;
        }
        if !attr.path().is_ident("ipc") {
            continue;
        }
        if let Err(e) = attr.parse_nested_meta(|meta| ipc_item(cx, &mut out, &meta)) {
            cx.syn_error(e);
        }
    }
    out
}

fn ipc_item(cx: &Ctxt, out: &mut Attrs, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let path = &meta.path;
    if path.is_ident("zero_copy") {
        if out.zero_copy.is_some() {
            cx.error_spanned_by(path, "duplicate ipc attribute `zero_copy`");
        }
        out.zero_copy = Some(path.span());
    } else if path.is_ident("name") {
        let lit: LitStr = meta.value()?.parse()?;
        if out.name.is_some() {
            cx.error_spanned_by(path, "duplicate ipc attribute `name`");
        }
        out.name = Some(lit);
    } else if path.is_ident("crate") {
        let lit: LitStr = meta.value()?.parse()?;
        if out.krate.is_some() {
            cx.error_spanned_by(path, "duplicate ipc attribute `crate`");
        }
        match lit.parse::<Path>() {
            Ok(p) => out.krate = Some(p),
            Err(_) => cx.error_spanned_by(
                &lit,
                format!(
                    "`crate = {:?}` is not a path; write e.g. `crate = \"ipcx\"`",
                    lit.value()
                ),
            ),
        }
    } else {
        let key = path
            .get_ident()
            .map_or_else(|| quote::quote!(#path).to_string(), Ident::to_string);
        return Err(meta.error(format!("unknown ipc attribute `{key}`; {KEYS}")));
    }
    Ok(())
}

fn repr_item(repr: &mut Repr, meta: &ParseNestedMeta<'_>) {
    let Some(ident) = meta.path.get_ident() else {
        return;
    };
    match ident.to_string().as_str() {
        "C" => repr.c = true,
        "transparent" => repr.transparent = true,
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" => {
            repr.int = Some(ident.clone());
        }
        _ => {}
    }
}

/// Consumes `(...)` or `= ...` after a repr item (`align(8)`, `packed(2)`).
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    } else if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    }
    Ok(())
}

const FIELD_KEYS: &str = "on a field expected `opaque` or `fingerprint = \"...\"`";

pub fn field(cx: &Ctxt, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs {
        if !attr.path().is_ident("ipc") {
            continue;
        }
        if let Err(e) = attr.parse_nested_meta(|meta| field_item(cx, &mut out, &meta)) {
            cx.syn_error(e);
        }
    }
    out
}

fn field_item(cx: &Ctxt, out: &mut FieldAttrs, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let path = &meta.path;
    if path.is_ident("opaque") {
        if out.opaque.is_some() {
            cx.error_spanned_by(path, "duplicate ipc attribute `opaque`");
        }
        out.opaque = Some(path.span());
    } else if path.is_ident("fingerprint") {
        const FORM: &str = "`fingerprint` takes a non-empty string naming the field's type or its version, e.g. `#[ipc(fingerprint = \"orders-v2\")]`";
        if !meta.input.peek(syn::Token![=]) {
            return Err(meta.error(FORM));
        }
        let expr: syn::Expr = meta.value()?.parse()?;
        match &expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(lit),
                ..
            }) if !lit.value().is_empty() => {
                if out.fingerprint.is_some() {
                    cx.error_spanned_by(path, "duplicate ipc attribute `fingerprint`");
                }
                out.fingerprint = Some((path.span(), lit.value()));
            }
            _ => cx.error_spanned_by(&expr, FORM),
        }
    } else {
        let key = path
            .get_ident()
            .map_or_else(|| quote::quote!(#path).to_string(), Ident::to_string);
        return Err(meta.error(format!("unknown ipc attribute `{key}`; {FIELD_KEYS}")));
    }
    Ok(())
}

/// `#[ipc]` is only meaningful on the type itself.
pub fn reject_inner(cx: &Ctxt, attrs: &[Attribute], what: &str) {
    for attr in attrs {
        if attr.path().is_ident("ipc") {
            cx.error_spanned_by(
                attr,
                format!("`#[ipc(...)]` is not supported on {what}, only on the type"),
            );
        }
    }
}
