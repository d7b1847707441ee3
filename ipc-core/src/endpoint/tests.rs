//! Unit tests of the endpoint grammar: round trips, defaults, refusals,
//! serde forms.

use std::time::Duration;

use ::serde::{Deserialize, Serialize};

use super::*;

fn ok(s: &str) -> Endpoint {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn bad(s: &str) -> EndpointError {
    match s.parse::<Endpoint>() {
        Ok(e) => panic!("{s} parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_scheme_round_trips() {
    for s in [
        "pipe:",
        "fifo:/tmp/orders",
        "mq:/orders",
        "sysv-mq:/var/run/orders",
        "shm:/orders",
        "sysv-shm:/var/run/orders",
        "unix:/run/orders.sock",
        "unix:@orders",
        "tcp://127.0.0.1:7000",
        "tcp://[::1]:7000",
        "tcp://localhost:0",
        "shm:/orders?capacity=262144&max_message_size=65536&wait=spin",
        "mq:/orders?capacity=10&mode=0660",
        "unix:/run/a.sock?mode=0660&allow_uid=1000,1001&connect_timeout=250ms",
        "shm:/o?wait=adaptive&spin_us=50",
    ] {
        let e = ok(s);
        assert_eq!(e.to_string(), s, "canonical form of {s}");
        assert_eq!(ok(&e.to_string()), e);
    }
}

#[test]
fn option_order_is_canonicalised() {
    let e = ok("shm:/orders?wait=spin&capacity=8192");
    assert_eq!(e.to_string(), "shm:/orders?capacity=8192&wait=spin");
    assert_eq!(e.options().capacity, Some(8192));
    assert_eq!(e.wait(), Wait::Spin);
}

#[test]
fn defaults_are_applied() {
    let e = ok("unix:/tmp/x.sock");
    assert_eq!(e.options().max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(e.options().mode, 0o600);
    assert_eq!(e.options().connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert!(e.allows_uid(12345));
    assert_eq!(e.unix_address(), Some(UnixAddress::Path("/tmp/x.sock")));
    assert_eq!(
        ok("unix:@abc").unix_address(),
        Some(UnixAddress::Abstract("abc"))
    );
    assert_eq!(ok("shm:/x").wait(), Wait::Adaptive);
}

#[test]
fn durations() {
    let t = |s: &str| {
        ok(&format!("tcp://h:1?connect_timeout={s}"))
            .options()
            .connect_timeout
    };
    assert!(
        bad("tcp://h:1?connect_timeout=250")
            .problem
            .contains("has no unit"),
        "a bare number is no longer read as milliseconds"
    );
    assert_eq!(t("250ms"), Duration::from_millis(250));
    assert_eq!(t("3s"), Duration::from_secs(3));
    assert_eq!(t("2m"), Duration::from_secs(120));
    assert_eq!(t("1500us"), Duration::from_micros(1500));
}

#[test]
fn unknown_scheme_names_allowed_and_suggests() {
    let e = bad("uds:/tmp/x");
    assert!(e.problem.contains("unknown scheme \"uds\""), "{e}");
    assert!(e.allowed.contains("unix:PATH"), "{e}");
    assert_eq!(e.example, "unix:/run/orders.sock");
    let e = bad("posix_mq:/x");
    assert_eq!(e.example, "mq:/orders");
}

#[test]
fn bad_inputs_name_the_offending_part() {
    let cases: &[(&str, &str)] = &[
        ("", "missing scheme"),
        ("/tmp/x", "missing scheme"),
        ("mq:orders", "start with '/'"),
        ("mq:/a/b", "without '/'"),
        ("mq:/", "without '/'"),
        ("shm:/a b", "not allowed"),
        ("pipe:/x", "takes no address"),
        ("tcp:127.0.0.1:1", "tcp://HOST:PORT"),
        ("tcp://127.0.0.1", "HOST:PORT"),
        ("tcp://127.0.0.1:99999", "0 to 65535"),
        ("tcp://:80", "host is empty"),
        ("unix:", "needs a socket path"),
        ("unix:@", "empty"),
        ("fifo:", "file path"),
        ("shm:/x?capacity=0", "capacity=0 is out of range"),
        ("shm:/x?capacity=256", "not a message count"),
        ("sysv-shm:/tmp/x?capacity=4095", "not a message count"),
        ("shm:/x?capacity=lots", "capacity=\"lots\""),
        ("shm:/x?wait=sleepy", "wait=\"sleepy\""),
        ("shm:/x?colour=red", "unknown option \"colour\""),
        ("shm:/x?capacity", "has no value"),
        ("shm:/x?capacity=1&capacity=2", "given twice"),
        ("tcp://h:1?mode=0660", "does not apply to tcp"),
        ("unix:/x?capacity=3", "does not apply to unix"),
        ("mq:/x?wait=spin", "does not apply to mq"),
        ("unix:/x?mode=0999", "mode=\"0999\""),
        ("unix:/x?mode=1777", "out of range"),
        ("unix:@x?mode=0660", "abstract"),
        ("unix:/x?max_message_size=2147483648", "out of range"),
        ("unix:/x?connect_timeout=5 parsecs", "not valid"),
        ("unix:/x?connect_timeout=0", "out of range"),
        ("unix:/x?allow_uid=root", "allow_uid"),
    ];
    for (input, needle) in cases {
        let e = bad(input);
        let text = e.to_string();
        assert!(text.contains(needle), "{input}: {text}");
        assert!(!e.allowed.is_empty() && !e.example.is_empty(), "{input}");
        assert!(
            e.example.parse::<Endpoint>().is_ok(),
            "{input}: example {} must parse",
            e.example
        );
    }
}

#[test]
fn unix_path_limit_names_the_kernel_limit() {
    let long = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH));
    let e = bad(&long);
    assert!(e.problem.contains("107"), "{e}");
    let ok_len = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH - 1));
    ok(&ok_len);
    let long = format!("mq:/{}", "a".repeat(MAX_POSIX_NAME + 1));
    assert!(bad(&long).problem.contains("NAME_MAX"));
}

#[test]
fn serde_string_and_table_forms() {
    #[derive(Deserialize, Serialize)]
    struct Cfg {
        a: Endpoint,
        b: Endpoint,
        c: Endpoint,
    }
    let cfg: Cfg = toml::from_str(
        r#"
        a = "mq:/orders?capacity=10"
        b = { transport = "shm", name = "/orders", capacity = 65536, wait = "spin" }
        c = { transport = "tcp", name = "127.0.0.1:7000", connect_timeout = "2s" }
        "#,
    )
    .unwrap();
    assert_eq!(cfg.a.to_string(), "mq:/orders?capacity=10");
    assert_eq!(cfg.b.to_string(), "shm:/orders?capacity=65536&wait=spin");
    assert_eq!(cfg.c.to_string(), "tcp://127.0.0.1:7000?connect_timeout=2s");
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        json,
        r#"{"a":"mq:/orders?capacity=10","b":"shm:/orders?capacity=65536&wait=spin","c":"tcp://127.0.0.1:7000?connect_timeout=2s"}"#
    );
    let back: Cfg = serde_json::from_str(&json).unwrap();
    assert_eq!(back.b, cfg.b);
    let j: Endpoint = serde_json::from_str(
        r#"{"transport":"unix","name":"/x.sock","mode":"0660","allow_uid":[1,2]}"#,
    )
    .unwrap();
    assert_eq!(j.to_string(), "unix:/x.sock?mode=0660&allow_uid=1,2");
}

#[test]
fn serde_errors_are_the_parser_errors() {
    let e = toml::from_str::<toml::Table>("a = 1").map(|_| ()); // sanity: toml works
    assert!(e.is_ok());
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Cfg {
        a: Endpoint,
    }
    let e = toml::from_str::<Cfg>(r#"a = "mq:orders""#).unwrap_err();
    assert!(e.to_string().contains("start with '/'"), "{e}");
    let e =
        toml::from_str::<Cfg>(r#"a = { transport = "mq", name = "/x", colour = 1 }"#).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    let e = toml::from_str::<Cfg>(r#"a = { transport = "shm", name = "/x", wait = "lazy" }"#)
        .unwrap_err();
    assert!(e.to_string().contains("block, spin, adaptive"), "{e}");
}

#[test]
fn from_env_overrides() {
    let var = format!("IPCX_TEST_ENDPOINT_{}", std::process::id());
    let default = ok("unix:/tmp/default.sock");
    assert_eq!(Endpoint::from_env(&var).unwrap(), None);
    assert_eq!(Endpoint::from_env_or(&var, &default).unwrap(), default);
    // SAFETY: no other thread of this test binary reads this uniquely named variable.
    unsafe { std::env::set_var(&var, "mq:/override") };
    assert_eq!(
        Endpoint::from_env_or(&var, &default).unwrap(),
        ok("mq:/override")
    );
    // SAFETY: as above.
    unsafe { std::env::set_var(&var, "mq:override") };
    let e = Endpoint::from_env(&var).unwrap_err();
    assert!(e.problem.contains(&var), "{e}");
    // SAFETY: as above.
    unsafe { std::env::remove_var(&var) };
}

#[test]
fn new_validates() {
    assert!(Endpoint::new(Scheme::Mq, "/ok", Options::default()).is_ok());
    assert!(Endpoint::new(Scheme::Mq, "nope", Options::default()).is_err());
    let o = Options {
        wait: Some(Wait::Spin),
        ..Options::default()
    };
    assert!(Endpoint::new(Scheme::Unix, "/x.sock", o).is_err());
}

#[test]
fn pattern_queue_on_queues_only() {
    use super::pattern::Pattern;
    let e = ok("mq:/jobs?pattern=queue&capacity=8&mode=0660");
    assert_eq!(e.pattern(), Pattern::Queue);
    assert_eq!(e.to_string(), "mq:/jobs?capacity=8&mode=0660&pattern=queue");
    assert_eq!(ok("mq:/jobs").pattern(), Pattern::Connection);
    assert_eq!(ok("mq:/jobs?pattern=connection").to_string(), "mq:/jobs");
    assert_eq!(
        ok("sysv-mq:/tmp/jobs?pattern=queue").pattern(),
        Pattern::Queue
    );
    let e = bad("shm:/x?pattern=queue");
    assert!(e.problem.contains("does not apply to shm"), "{e}");
    let e = bad("mq:/x?pattern=fifo");
    assert!(
        e.allowed.contains("connection") && e.allowed.contains("queue"),
        "{e}"
    );
    for opt in [
        "allow_uid=1000",
        "connect_timeout=2s",
        "wait_for_listener=1s",
    ] {
        let e = bad(&format!("mq:/x?pattern=queue&{opt}"));
        assert!(e.problem.contains("standalone queue"), "{opt}: {e}");
        e.example.parse::<Endpoint>().unwrap();
    }
    #[derive(Deserialize)]
    struct Cfg {
        q: Endpoint,
    }
    let c: Cfg =
        toml::from_str(r#"q = { transport = "mq", name = "/jobs", pattern = "queue" }"#).unwrap();
    assert_eq!(c.q.to_string(), "mq:/jobs?pattern=queue");
}

#[test]
fn nats_endpoints_parse_and_round_trip() {
    for s in [
        "nats://127.0.0.1:4222/orders",
        "nats://broker.example:4222/shop.orders",
        "nats://[::1]:4222/o-1_x",
        "nats://127.0.0.1:4222/orders?max_message_size=65536&connect_timeout=2s&wait_for_listener=5s&heartbeat=250ms",
    ] {
        let e = ok(s);
        assert_eq!(e.scheme(), Scheme::Nats);
        assert_eq!(e.to_string(), s);
        assert_eq!(ok(&e.to_string()), e);
    }
    let e = ok("nats://h:4222/a");
    assert_eq!(e.address(), "h:4222/a");
    assert_eq!(e.heartbeat(), DEFAULT_HEARTBEAT);
    assert_eq!(
        ok("nats://h:4222/a?heartbeat=100ms").heartbeat(),
        Duration::from_millis(100)
    );
}

#[test]
fn nats_refusals_name_the_problem_and_give_an_example_that_parses() {
    for (s, needle) in [
        ("nats:h:4222/a", "nats://HOST:PORT/NAME"),
        ("nats://h:4222", "no /NAME"),
        ("nats://h/a", "HOST:PORT"),
        ("nats://:4222/a", "host is empty"),
        ("nats://h:0/a", "from 1 to 65535"),
        ("nats://h:99999/a", "from 1 to 65535"),
        ("nats://h:4222/", "bytes"),
        ("nats://h:4222/a*", "not allowed"),
        ("nats://h:4222/a>b", "not allowed"),
        ("nats://h:4222/a b", "not allowed"),
        ("nats://h:4222/a..b", "empty subject token"),
        ("nats://h:4222/.a", "empty subject token"),
        ("nats://h:4222/a?mode=0660", "mode does not apply"),
        ("nats://h:4222/a?allow_uid=1", "allow_uid does not apply"),
        (
            "nats://h:4222/a?capacity=8",
            "applies to nats:// queues only",
        ),
        (
            "nats://h:4222/a?replicas=3",
            "applies to nats:// queues only",
        ),
        ("nats://h:4222/a?pattern=queue&replicas=0", "out of range"),
        ("nats://h:4222/a?pattern=queue&ack_wait=10", "has no unit"),
        ("nats://h:4222/a?pattern=queue&ack_wait=13h", "out of range"),
        (
            "nats://h:4222/a?pattern=queue&heartbeat=1s",
            "standalone queue",
        ),
        ("nats://h:4222/a?password_file=/p", "go together"),
        (
            "nats://h:4222/a?creds=/c&user=u&password_file=/p",
            "give one of them",
        ),
        ("nats://h:4222/a?creds=/c&nkey=/k", "give one of them"),
        ("nats://h:4222/a?nkey=", "not valid"),
        ("tcp://h:1?nkey=/k", "nkey does not apply"),
        ("nats://h:4222/a?tls_ca=/ca.pem", "needs tls=required"),
        ("nats://h:4222/a?tls=yes", "not valid"),
        ("nats://h:4222,/a", "empty server"),
        ("nats://h:4222,h2/a", "HOST:PORT"),
        ("mq:/a?replicas=3", "replicas does not apply"),
        ("nats://h:4222/a?heartbeat=1", "has no unit"),
        ("nats://h:4222/a?heartbeat=1ms", "out of range"),
        ("nats://h:4222/a?heartbeat=2h", "out of range"),
        ("mq:/a?heartbeat=1s", "heartbeat does not apply"),
    ] {
        let e = bad(s);
        assert!(e.to_string().contains(needle), "{s}: {e}");
        assert!(
            e.example.parse::<Endpoint>().is_ok(),
            "{s}: example {}",
            e.example
        );
    }
    for s in [
        "nats://h:4222/a?pattern=queue",
        "nats://h1:4222,h2:4223,[::1]:4224/a.b?capacity=10&connect_timeout=2s&pattern=queue&replicas=3&ack_wait=500ms&max_bytes=1048576",
        "nats://h:4222/a?user=app&password_file=/etc/app.pw",
        "nats://h:4222/a?creds=/etc/app.creds&tls=required&tls_ca=/etc/ca.pem",
        "nats://h:4222/a?nkey=/etc/app.nk",
        "nats://h:4222/a?pattern=queue&nkey=/etc/app.nk",
    ] {
        let e = ok(s);
        assert_eq!(e.to_string(), s);
        assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
    }
}

#[test]
fn nats_table_form_is_the_string_form() {
    #[derive(Deserialize)]
    struct Config {
        orders: Endpoint,
    }
    let c: Config = toml::from_str(
        r#"orders = { transport = "nats", name = "127.0.0.1:4222/orders", heartbeat = "500ms" }"#,
    )
    .unwrap();
    assert_eq!(
        c.orders.to_string(),
        "nats://127.0.0.1:4222/orders?heartbeat=500ms"
    );
}
