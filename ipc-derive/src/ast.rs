//! The input type, parsed into the shapes the later stages work on.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{DeriveInput, Generics, Ident, Member, Type};

use crate::attr::{self, Attrs, FieldAttrs};
use crate::ctxt::Ctxt;

/// The type being derived.
pub struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: Attrs,
    pub data: Data<'a>,
}

pub enum Data<'a> {
    Struct(Fields<'a>),
    Enum(Vec<Variant<'a>>),
    /// The `union` keyword's span.
    Union(Span),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Named,
    Tuple,
    Unit,
}

impl Style {
    /// How the shape enters fingerprints.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Named => "named",
            Style::Tuple => "tuple",
            Style::Unit => "unit",
        }
    }
}

pub struct Fields<'a> {
    pub style: Style,
    pub fields: Vec<Field<'a>>,
}

pub struct Variant<'a> {
    pub ident: &'a Ident,
    pub fields: Fields<'a>,
    pub original: &'a syn::Variant,
}

pub struct Field<'a> {
    /// `x` or `0`: what `offset_of!` and field access take.
    pub member: Member,
    /// The name as it enters fingerprints and errors.
    pub name: String,
    pub ty: &'a Type,
    pub attrs: FieldAttrs,
}

impl<'a> Input<'a> {
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Input<'a> {
        let attrs = attr::container(cx, &input.attrs);
        let data = match &input.data {
            syn::Data::Struct(s) => Data::Struct(Fields::from_syn(cx, &s.fields)),
            syn::Data::Enum(e) => Data::Enum(
                e.variants
                    .iter()
                    .map(|v| {
                        attr::reject_inner(cx, &v.attrs, "an enum variant");
                        Variant {
                            ident: &v.ident,
                            fields: Fields::from_syn(cx, &v.fields),
                            original: v,
                        }
                    })
                    .collect(),
            ),
            syn::Data::Union(u) => Data::Union(u.union_token.span),
        };
        Input {
            ident: &input.ident,
            generics: &input.generics,
            attrs,
            data,
        }
    }

    /// Every field of the type, of all variants.
    pub fn all_fields(&self) -> Vec<&Field<'a>> {
        match &self.data {
            Data::Struct(f) => f.fields.iter().collect(),
            Data::Enum(vs) => vs.iter().flat_map(|v| v.fields.fields.iter()).collect(),
            Data::Union(_) => Vec::new(),
        }
    }
}

impl<'a> Fields<'a> {
    fn from_syn(cx: &Ctxt, fields: &'a syn::Fields) -> Fields<'a> {
        let style = match fields {
            syn::Fields::Named(_) => Style::Named,
            syn::Fields::Unnamed(_) => Style::Tuple,
            syn::Fields::Unit => Style::Unit,
        };
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (member, name) = match &f.ident {
                    Some(ident) => (Member::Named(ident.clone()), ident.unraw().to_string()),
                    None => (Member::Unnamed(i.into()), i.to_string()),
                };
                Field {
                    member,
                    name,
                    ty: &f.ty,
                    attrs: attr::field(cx, &f.attrs),
                }
            })
            .collect();
        Fields { style, fields }
    }
}
