//! Compile-time behaviour of the derive: what must compile, and the error
//! each mistake gets (one mistake per file, named after it).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
