//! Endpoint edge cases through the public API: each refusal names the part
//! or option, the value, what is allowed and a corrected example that
//! parses; relative paths become absolute; `wait_for_listener`; and
//! `parse(display(e)) == e` over every scheme and option.

use std::time::Duration;

use ipc_core::endpoint::{Endpoint, EndpointError, MAX_SHM_CAPACITY, Options, Scheme, UnixAddress};

fn ok(s: &str) -> Endpoint {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Parses `s`, expecting a refusal whose text contains every needle, with
/// an allowed list and an example that parses and is not refused itself.
#[track_caller]
fn refused(s: &str, needles: &[&str]) -> EndpointError {
    let e = match s.parse::<Endpoint>() {
        Ok(e) => panic!("{s:?} parsed as {e}"),
        Err(e) => e,
    };
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "{s:?}: {n:?} not in: {text}");
    }
    assert_eq!(e.input, s);
    assert!(!e.allowed.is_empty(), "{s:?}: no allowed list");
    let example = e
        .example
        .parse::<Endpoint>()
        .unwrap_or_else(|x| panic!("{s:?}: example {:?} does not parse: {x}", e.example));
    assert_eq!(ok(&example.to_string()), example);
    e
}

fn cwd() -> String {
    std::env::current_dir()
        .unwrap()
        .to_str()
        .expect("tests run from a UTF-8 directory")
        .to_string()
}

#[test]
fn control_characters_are_refused_where_they_are() {
    let cases: &[(&str, &[&str])] = &[
        (
            "unix:/x.sock\n",
            &["the address", "\"/x.sock\\n\"", "U+000A"],
        ),
        ("unix:/x\0.sock", &["the address", "U+0000"]),
        ("unix:/x\t.sock", &["the address", "'\\t'", "U+0009"]),
        ("unix:@x\r", &["the address", "U+000D"]),
        ("fifo:/tmp/a\u{7f}", &["the address", "U+007F"]),
        ("sysv-mq:rel\n", &["the address"]),
        ("sysv-shm:/tmp/x\u{1b}", &["the address", "U+001B"]),
        ("mq:/orders\n", &["the address"]),
        ("shm:/orders\n", &["the address"]),
        ("tcp://h:1\n", &["the address", "\"h:1\\n\""]),
        ("pipe:\n", &["the address"]),
        ("un\nix:/x", &["the scheme", "\"un\\nix\""]),
        (
            "shm:/x?capacity=1048576\n",
            &["option capacity", "\"1048576\\n\""],
        ),
        ("unix:/x?allow_uid=1000\t", &["option allow_uid", "U+0009"]),
        (
            "unix:/x?mode=0600&connect_timeout=\n5s",
            &["option connect_timeout"],
        ),
        ("unix:/x?conn\nect_timeout=5s", &["the option name"]),
    ];
    for (input, needles) in cases {
        let e = refused(input, needles);
        assert!(e.problem.contains("control character"), "{input:?}: {e}");
        assert!(e.allowed.contains("printable"), "{input:?}: {e}");
    }
    // The example is the input without the control character, when that parses.
    assert_eq!(refused("unix:/x.sock\n", &[]).example, "unix:/x.sock");
    assert_eq!(
        refused("shm:/x?capacity=1048576\n", &[]).example,
        "shm:/x?capacity=1048576"
    );
    // Built from parts, too.
    assert!(Endpoint::new(Scheme::Unix, "/x.sock\n", Options::default()).is_err());
}

#[test]
fn shm_capacity_above_the_limit_is_refused_not_capped() {
    assert_eq!(MAX_SHM_CAPACITY, 1 << 30);
    for scheme in ["shm:/x", "sysv-shm:/tmp/x"] {
        let e = refused(
            &format!("{scheme}?capacity=1099511627776"),
            &["capacity=1099511627776", "above the limit of 1073741824"],
        );
        assert!(e.allowed.contains("4096 to 1073741824"), "{e}");
        refused(
            &format!("{scheme}?capacity={}", MAX_SHM_CAPACITY + 1),
            &["above the limit"],
        );
        let at_limit = ok(&format!("{scheme}?capacity={MAX_SHM_CAPACITY}"));
        assert_eq!(at_limit.options().capacity, Some(MAX_SHM_CAPACITY));
    }
    // Queue capacities count messages; the kernel's limits apply at open.
    ok("mq:/x?capacity=1099511627776");
}

#[test]
fn max_message_size_zero_is_refused() {
    let e = refused(
        "unix:/x?max_message_size=0",
        &["max_message_size=0 is out of range", "from 1 to 1073741824"],
    );
    assert_eq!(e.example, "unix:/run/orders.sock?max_message_size=65536");
    assert_eq!(
        ok("unix:/x?max_message_size=1").options().max_message_size,
        1
    );
    let o = Options {
        max_message_size: 0,
        ..Options::default()
    };
    assert!(Endpoint::new(Scheme::Mq, "/x", o).is_err());
}

#[test]
fn durations_need_a_unit() {
    for key in ["connect_timeout", "wait_for_listener"] {
        let e = refused(
            &format!("unix:/x?{key}=5"),
            &[&format!("{key}=5 has no unit"), "5s", "5ms"],
        );
        assert_eq!(e.example, format!("unix:/run/orders.sock?{key}=5s"));
        assert!(e.allowed.contains("500ms"), "{e}");
        refused(&format!("tcp://h:1?{key}=5sec"), &[key, "not valid"]);
        refused(&format!("tcp://h:1?{key}=-5s"), &[key, "not valid"]);
        for (text, d) in [
            ("100us", Duration::from_micros(100)),
            ("500ms", Duration::from_millis(500)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
        ] {
            let e = ok(&format!("unix:/x?{key}={text}"));
            let got = if key == "connect_timeout" {
                e.options().connect_timeout
            } else {
                e.wait_for_listener()
            };
            assert_eq!(got, d, "{key}={text}");
        }
    }
    // A bare 0 needs no unit: out of range for connect_timeout, the
    // default (do not wait) for wait_for_listener.
    refused("unix:/x?connect_timeout=0", &["out of range"]);
    let e = ok("unix:/x?wait_for_listener=0");
    assert_eq!(e.wait_for_listener(), Duration::ZERO);
    assert_eq!(e.to_string(), "unix:/x");
    // The table form goes through the same parser: a number is refused too.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Cfg {
        a: Endpoint,
    }
    let e =
        toml::from_str::<Cfg>(r#"a = { transport = "unix", name = "/x", connect_timeout = 5 }"#)
            .unwrap_err();
    assert!(e.to_string().contains("has no unit"), "{e}");
}

#[test]
fn mode_on_an_abstract_socket_is_refused_even_at_its_default() {
    for mode in ["0600", "0660", "0777"] {
        let e = refused(
            &format!("unix:@x?mode={mode}"),
            &[
                &format!("mode={mode}"),
                "abstract",
                "no permission bits",
                "allow_uid",
            ],
        );
        assert_eq!(e.example, "unix:@x?allow_uid=1000");
    }
    let o = Options {
        mode: 0o660,
        ..Options::default()
    };
    assert!(Endpoint::new(Scheme::Unix, "@x", o).is_err());
    let e = serde_json::from_str::<Endpoint>(r#"{"transport":"unix","name":"@x","mode":"0600"}"#)
        .unwrap_err();
    assert!(e.to_string().contains("abstract"), "{e}");
    // Socket files keep their mode, abstract sockets their allow_uid.
    assert_eq!(ok("unix:/x.sock?mode=0600").to_string(), "unix:/x.sock");
    ok("unix:@x?allow_uid=1000");
}

#[test]
fn wait_for_listener_applies_to_every_scheme_that_connects() {
    assert_eq!(Options::default().wait_for_listener, Duration::ZERO);
    assert_eq!(ok("unix:/x").wait_for_listener(), Duration::ZERO);
    for scheme in Scheme::ALL {
        let s = format!("{}?wait_for_listener=10s", scheme.example());
        if !scheme.is_channel() {
            refused(&s, &["wait_for_listener does not apply to"]);
        } else if scheme == Scheme::Pipe {
            refused(&s, &["wait_for_listener does not apply to pipe"]);
            let o = Options {
                wait_for_listener: Duration::from_secs(1),
                ..Options::default()
            };
            assert!(Endpoint::new(Scheme::Pipe, "", o).is_err());
        } else {
            let e = ok(&s);
            assert_eq!(e.wait_for_listener(), Duration::from_secs(10), "{s}");
            assert_eq!(e.to_string(), s);
        }
    }
    let e = ok("tcp://h:1?wait_for_listener=1500ms&connect_timeout=2s");
    assert_eq!(
        e.to_string(),
        "tcp://h:1?connect_timeout=2s&wait_for_listener=1500ms"
    );
    let t: Endpoint = toml::from_str::<toml::Table>(
        r#"e = { transport = "mq", name = "/orders", wait_for_listener = "30s" }"#,
    )
    .unwrap()["e"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(t.to_string(), "mq:/orders?wait_for_listener=30s");
}

#[test]
fn display_parses_back_to_the_same_endpoint() {
    for s in [
        "pipe:",
        "pipe:?max_message_size=1&connect_timeout=100us",
        "fifo:/tmp/orders?wait_for_listener=1s",
        "fifo:rel/orders",
        "mq:/orders?capacity=10&mode=0660&allow_uid=7&wait_for_listener=250ms",
        "sysv-mq:/var/run/orders?connect_timeout=1m&wait_for_listener=1h",
        "sysv-mq:../orders",
        "shm:/orders?capacity=1073741824&wait=spin&spin_us=0",
        "shm:/o?max_message_size=1073741824&wait_for_listener=5s&wait=block",
        "sysv-shm:/var/run/orders?capacity=4096&wait_for_listener=2m",
        "sysv-shm:./a/./b",
        "unix:/run/orders.sock?mode=0660&allow_uid=1000,1001&connect_timeout=250ms",
        "unix:rel.sock?wait_for_listener=3s",
        "unix:@orders?allow_uid=0&wait_for_listener=1500us",
        "tcp://127.0.0.1:7000?wait_for_listener=10s",
        "tcp://[::1]:0?connect_timeout=1h&max_message_size=65536",
    ] {
        let e = ok(s);
        let shown = e.to_string();
        assert_eq!(ok(&shown), e, "{s} -> {shown}");
        assert_eq!(
            ok(&shown).to_string(),
            shown,
            "{s}: canonical form is stable"
        );
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), e, "{s}");
        let is_path = matches!(
            e.scheme(),
            Scheme::Unix | Scheme::Fifo | Scheme::SysvMq | Scheme::SysvShm
        ) && !e.address().starts_with('@');
        if is_path {
            assert!(e.address().starts_with('/'), "{s}: {shown}");
        }
    }
}

#[test]
fn relative_paths_are_resolved_against_the_current_directory() {
    let here = cwd();
    let parent = here.rsplit_once('/').map_or("", |(p, _)| p).to_string();
    for scheme in ["unix", "fifo", "sysv-mq", "sysv-shm"] {
        let e = ok(&format!("{scheme}:rel.x"));
        assert_eq!(e.address(), format!("{here}/rel.x"), "{scheme}");
        assert_eq!(e.to_string(), format!("{scheme}:{here}/rel.x"));
        let e = ok(&format!("{scheme}:./a/./b/../c.x?max_message_size=64"));
        assert_eq!(e.address(), format!("{here}/a/c.x"), "{scheme}");
        let e = ok(&format!("{scheme}:../up.x"));
        assert_eq!(e.address(), format!("{parent}/up.x"), "{scheme}");
        // Absolute paths are kept as written.
        assert_eq!(ok(&format!("{scheme}:/tmp/./x")).address(), "/tmp/./x");
        // A spelling that names a directory is refused, not resolved.
        for dir in [".", "..", "a/..", "a/.", "a/"] {
            refused(&format!("{scheme}:{dir}"), &["not a directory", dir]);
        }
    }
    assert_eq!(
        ok("unix:s.sock").unix_address(),
        Some(UnixAddress::Path(&format!("{here}/s.sock")))
    );
    // Names that are not file paths are left alone.
    assert_eq!(ok("unix:@rel").address(), "@rel");
    assert_eq!(ok("mq:/rel").address(), "/rel");
    refused("mq:rel", &["start with '/'"]);
    // Built from parts, the same.
    let e = Endpoint::new(Scheme::Fifo, "q/../orders", Options::default()).unwrap();
    assert_eq!(e.address(), format!("{here}/orders"));
    assert_eq!(e, ok("fifo:orders"));
}

#[test]
fn a_relative_socket_path_too_long_once_resolved_says_so() {
    let here = cwd();
    let name = "s".repeat(100);
    if here.len() + 1 + name.len() <= 107 {
        return; // The test directory is too short to push it over.
    }
    refused(
        &format!("unix:{name}"),
        &["107", "resolved against the current directory", &here],
    );
}

/// Found by the `endpoint` fuzz target: `Endpoint::new` accepted an
/// address with a '?', whose printed form then parsed as other options
/// (`fifo:/tmp/a?mode=0777`) or not at all.
#[test]
fn an_address_with_a_question_mark_is_refused() {
    for scheme in Scheme::ALL {
        for address in ["/tmp/a?mode=0777", "/x?y", "h?:1", "?"] {
            let r = Endpoint::new(scheme, address, Options::default());
            let e = r.expect_err(&format!("{scheme} {address:?}"));
            assert!(e.to_string().contains('?'), "{e}");
        }
    }
    let e = Endpoint::new(Scheme::Fifo, "/tmp/a", Options::default()).unwrap();
    assert_eq!(e.to_string().parse::<Endpoint>(), Ok(e));
}

#[test]
fn semaphore_endpoints_take_a_name_or_path_and_only_mode() {
    let e = ok("sem:/orders?mode=0660");
    assert_eq!(e.scheme(), Scheme::Sem);
    assert!(!e.scheme().is_channel());
    assert_eq!(e.to_string(), "sem:/orders?mode=0660");
    let e = ok("sysv-sem:/var/run/orders");
    assert_eq!(e.scheme(), Scheme::SysvSem);
    assert_eq!(e.to_string(), "sysv-sem:/var/run/orders");
    assert!(ok("sysv-sem:rel/orders").address().starts_with('/'));
    refused("sem:orders", &["start with '/'"]);
    refused("sem:/a/b", &["without '/'"]);
    refused("sysv-sem:/tmp/", &["file path"]);
    for opt in [
        "capacity=8",
        "max_message_size=64",
        "connect_timeout=1s",
        "allow_uid=0",
        "wait=spin",
    ] {
        let name = opt.split('=').next().unwrap();
        refused(
            &format!("sem:/x?{opt}"),
            &[&format!("{name} does not apply to sem:")],
        );
        refused(
            &format!("sysv-sem:/x?{opt}"),
            &[&format!("{name} does not apply to sysv-sem:")],
        );
    }
}
