//! Writes the implementations.
//!
//! Output is wrapped in `const _: () = { ... };`, uses absolute paths to the
//! core crate (`::ipc_core` unless `#[ipc(crate = "...")]` says otherwise)
//! and marks every impl `#[automatically_derived]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Path, parse_quote};

use crate::ast::{Data, Fields, Input};

pub fn expand(input: &Input<'_>) -> TokenStream {
    let krate: Path = input.attrs.krate.clone().unwrap_or_else(default_crate);
    let body = if input.attrs.zero_copy.is_some() {
        zero_copy(input, &krate)
    } else {
        postcard(input, &krate)
    };
    quote! {
        const _: () = {
            #body
        };
    }
}

fn wire_name(input: &Input<'_>) -> String {
    input
        .attrs
        .name
        .as_ref()
        .map_or_else(|| input.ident.to_string(), syn::LitStr::value)
}

/// Generics with `T: TypeFingerprint` added for every type parameter.
fn with_fingerprint_bounds(generics: &Generics, krate: &Path) -> Generics {
    let mut g = generics.clone();
    let params: Vec<_> = g.type_params().map(|t| t.ident.clone()).collect();
    let wc = g.make_where_clause();
    for p in params {
        wc.predicates
            .push(parse_quote!(#p: #krate::message::TypeFingerprint));
    }
    g
}

/// `.str("field").u64(<Ty as TypeFingerprint>::TYPE_FINGERPRINT)` for each
/// field, the type's part spanned at the field so a missing impl points there.
/// An opaque field's type is replaced by a hash of "opaque" and its label.
fn fields_fingerprint(fields: &Fields<'_>, krate: &Path) -> TokenStream {
    let style = fields.style.as_str();
    let count = fields.fields.len() as u64;
    let each = fields.fields.iter().map(|f| {
        let name = &f.name;
        let ty = f.ty;
        let label = match (&f.attrs.fingerprint, f.attrs.opaque) {
            (Some((_, label)), _) => Some(label.clone()),
            (None, Some(_)) => Some(opaque_label(ty)),
            (None, None) => None,
        };
        let fp = match label {
            Some(label) => quote! {
                #krate::message::Fnv64::new()
                    .str(#krate::message::FINGERPRINT_SCHEME)
                    .str("opaque")
                    .str(#label)
                    .finish()
            },
            None => {
                quote_spanned!(ty.span()=> <#ty as #krate::message::TypeFingerprint>::TYPE_FINGERPRINT)
            }
        };
        quote!(.str(#name).u64(#fp))
    });
    quote!(.str(#style).u64(#count) #(#each)*)
}

/// What `#[ipc(opaque)]` hashes for a field's type: the last segment's
/// identifier of a path (`Uuid` for `uuid::Uuid`, `DateTime` for
/// `DateTime<Utc>`), so module paths and imports do not matter; the tokens
/// without spaces for any other type.
fn opaque_label(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Group(g) => opaque_label(&g.elem),
        syn::Type::Paren(p) => opaque_label(&p.elem),
        syn::Type::Path(p) if p.qself.is_none() && !p.path.segments.is_empty() => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        _ => quote!(#ty).to_string().split_whitespace().collect(),
    }
}

/// The fingerprint of `input` as a postcard message; also what
/// `#[derive(TypeFingerprint)]` gives, so the two derives agree.
fn postcard_fingerprint(input: &Input<'_>, krate: &Path) -> TokenStream {
    let name = wire_name(input);
    let shape = shape_fingerprint(input, krate);
    quote! {
        #krate::message::Fnv64::new()
            .str(#krate::message::FINGERPRINT_SCHEME)
            .str(#name)
            .u64(#krate::message::Encoding::Postcard.id())
            #shape
            .finish()
    }
}

/// `#[derive(TypeFingerprint)]`.
pub fn expand_type_fingerprint(input: &Input<'_>) -> TokenStream {
    let krate: Path = input.attrs.krate.clone().unwrap_or_else(default_crate);
    let ident = input.ident;
    let fp = postcard_fingerprint(input, &krate);
    let generics = with_fingerprint_bounds(input.generics, &krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::message::TypeFingerprint for #ident #ty_generics #where_clause {
                const TYPE_FINGERPRINT: u64 = #fp;
            }
        };
    }
}

/// The fingerprint's shape part: struct fields or enum variants.
fn shape_fingerprint(input: &Input<'_>, krate: &Path) -> TokenStream {
    match &input.data {
        Data::Struct(fields) => {
            let f = fields_fingerprint(fields, krate);
            quote!(.str("struct") #f)
        }
        Data::Enum(variants) => {
            let count = variants.len() as u64;
            let each = variants.iter().map(|v| {
                let name = v.ident.to_string();
                let f = fields_fingerprint(&v.fields, krate);
                quote!(.str(#name) #f)
            });
            quote!(.str("enum").u64(#count) #(#each)*)
        }
        Data::Union(_) => quote!(),
    }
}

fn postcard(input: &Input<'_>, krate: &Path) -> TokenStream {
    let ident = input.ident;
    let name = wire_name(input);
    let fp = postcard_fingerprint(input, krate);
    let mut generics = with_fingerprint_bounds(input.generics, krate);
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let wc = generics.make_where_clause();
    wc.predicates.push(parse_quote!(
        #ident #ty_generics: #krate::message::__private::Serialize
            + #krate::message::__private::DeserializeOwned
    ));
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::message::IpcMessage for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const FINGERPRINT: u64 = #fp;
            const ENCODING: #krate::message::Encoding = #krate::message::Encoding::Postcard;

            #[inline]
            fn encode(&self, buf: &mut ::std::vec::Vec<u8>) -> #krate::Result<()> {
                #krate::message::postcard_encode(self, buf, #name)
            }

            #[inline]
            fn decode(bytes: &[u8]) -> #krate::Result<Self> {
                #krate::message::postcard_decode::<Self>(bytes, #name)
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::message::TypeFingerprint for #ident #ty_generics #where_clause {
            const TYPE_FINGERPRINT: u64 =
                <Self as #krate::message::IpcMessage>::FINGERPRINT;
        }
    }
}

fn zero_copy(input: &Input<'_>, krate: &Path) -> TokenStream {
    let ident = input.ident;
    let name = wire_name(input);
    let shape = shape_fingerprint(input, krate);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let fp_generics = with_fingerprint_bounds(input.generics, krate);
    let (fp_impl_generics, _, fp_where_clause) = fp_generics.split_for_impl();
    let size_of = quote!(::core::mem::size_of);

    let (layout, zero_copy_impl) = match &input.data {
        Data::Enum(variants) => {
            let repr = input
                .attrs
                .repr
                .int
                .clone()
                .unwrap_or_else(|| parse_quote!(u8));
            let names = variants.iter().map(|v| v.ident.to_string());
            let idents: Vec<_> = variants.iter().map(|v| v.ident).collect();
            let layout = quote! {
                .str(stringify!(#repr))
                #( .str(#names).u64((#ident::#idents as #repr) as u64) )*
            };
            let imp = quote! {
                #[automatically_derived]
                // SAFETY: the derive checked that `#ident` is a fieldless enum
                // with an integer repr: its size is that integer's, it has no
                // padding and no pointers. `validate` accepts only the
                // discriminants of its variants, its only valid values.
                unsafe impl #krate::message::ZeroCopy for #ident {
                    fn validate(bytes: &[u8]) -> #krate::Result<()> {
                        #krate::message::__private::expect_len::<Self>(bytes, #name)?;
                        let raw = bytes.try_into().map_err(|_| {
                            #krate::message::__private::bad_discriminant(#name, "a value of the wrong size")
                        })?;
                        let value = <#repr>::from_ne_bytes(raw);
                        #( if value == #ident::#idents as #repr { return ::core::result::Result::Ok(()); } )*
                        ::core::result::Result::Err(
                            #krate::message::__private::bad_discriminant(#name, value),
                        )
                    }
                }
            };
            (layout, imp)
        }
        Data::Struct(fields) => {
            let members: Vec<_> = fields.fields.iter().map(|f| &f.member).collect();
            let labels: Vec<_> = fields.fields.iter().map(|f| f.name.clone()).collect();
            let tys: Vec<_> = fields.fields.iter().map(|f| f.ty).collect();
            let layout = quote! {
                #( .u64(::core::mem::offset_of!(Self, #members) as u64) )*
            };
            let field_checks = tys.iter().map(|ty| {
                quote_spanned!(ty.span()=> let () = <#ty as #krate::message::ZeroCopy>::LAYOUT_CHECK;)
            });
            let padding_message = format!(
                "zero-copy message `{ident}` has padding: its size is larger than the sum of its fields' sizes; add explicit padding fields (such as `_pad: [u8; N]`) where the compiler would insert padding, or order the fields from largest to smallest alignment"
            );
            let imp = quote! {
                #[automatically_derived]
                // SAFETY: the derive checked that `#ident` is `repr(C)` or
                // `repr(transparent)` (defined layout) and holds no
                // references, pointers or heap types by name; the bounds in
                // `LAYOUT_CHECK` prove every field is `ZeroCopy`, and its
                // assertion (size equals the sum of the fields' sizes) that
                // there is no padding. It is evaluated below for non-generic
                // types and by every helper that views the bytes. `validate`
                // validates every field at its offset. Every bit pattern is
                // valid exactly when it is for every field (no padding).
                unsafe impl #impl_generics #krate::message::ZeroCopy for #ident #ty_generics #where_clause {
                    const EVERY_BIT_PATTERN_VALID: bool =
                        true #( && <#tys as #krate::message::ZeroCopy>::EVERY_BIT_PATTERN_VALID )*;

                    const LAYOUT_CHECK: () = {
                        #( #field_checks )*
                        ::core::assert!(
                            #size_of::<Self>() == 0 #( + #size_of::<#tys>() )*,
                            #padding_message
                        );
                    };

                    fn validate(bytes: &[u8]) -> #krate::Result<()> {
                        #krate::message::__private::expect_len::<Self>(bytes, #name)?;
                        #(
                            #krate::message::__private::validate_field::<#tys>(
                                bytes,
                                ::core::mem::offset_of!(Self, #members),
                                #name,
                                #labels,
                            )?;
                        )*
                        ::core::result::Result::Ok(())
                    }
                }
            };
            (layout, imp)
        }
        Data::Union(_) => (quote!(), quote!()),
    };

    let eager_check = if input.generics.params.is_empty() {
        quote!(const _: () = <#ident as #krate::message::ZeroCopy>::LAYOUT_CHECK;)
    } else {
        quote!()
    };

    quote! {
        #zero_copy_impl

        #eager_check

        #[automatically_derived]
        impl #fp_impl_generics #krate::message::IpcMessage for #ident #ty_generics #fp_where_clause {
            const NAME: &'static str = #name;
            const FINGERPRINT: u64 = #krate::message::Fnv64::new()
                .str(#krate::message::FINGERPRINT_SCHEME)
                .str(#name)
                .u64(#krate::message::Encoding::ZeroCopy.id())
                .u64(if cfg!(target_endian = "little") { 1 } else { 2 })
                .u64(#size_of::<Self>() as u64)
                .u64(::core::mem::align_of::<Self>() as u64)
                #shape
                #layout
                .finish();
            const ENCODING: #krate::message::Encoding = #krate::message::Encoding::ZeroCopy;

            #[inline]
            fn encode(&self, buf: &mut ::std::vec::Vec<u8>) -> #krate::Result<()> {
                buf.extend_from_slice(#krate::message::zero_copy_bytes(self));
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn decode(bytes: &[u8]) -> #krate::Result<Self> {
                #krate::message::zero_copy_read::<Self>(bytes, #name)
            }

            #[inline]
            fn wire_bytes(&self) -> ::core::option::Option<&[u8]> {
                ::core::option::Option::Some(#krate::message::zero_copy_bytes(self))
            }
        }

        #[automatically_derived]
        impl #fp_impl_generics #krate::message::TypeFingerprint for #ident #ty_generics #fp_where_clause {
            const TYPE_FINGERPRINT: u64 =
                <Self as #krate::message::IpcMessage>::FINGERPRINT;
        }
    }
}

/// Where the core lives when `#[ipc(crate = "...")]` does not say: `ipcx`
/// if the deriving crate depends on it (or is it), else `ipc-core`, under
/// whatever name the deriving crate's manifest gives them.
fn default_crate() -> Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    let path = |found: FoundCrate, own: &str| -> Path {
        let name = match found {
            FoundCrate::Itself => own.to_string(),
            FoundCrate::Name(n) => n,
        };
        let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
        parse_quote!(::#ident)
    };
    match crate_name("ipcx") {
        Ok(found) => path(found, "ipcx"),
        Err(_) => match crate_name("ipc-core") {
            Ok(found) => path(found, "ipc_core"),
            Err(_) => parse_quote!(::ipc_core),
        },
    }
}
