//! `ipcx bench --repeat`: every figure measured in interleaved repetitions,
//! each one in the JSON, the ratio's range in the table and as error bars
//! in the chart. A tiny run (one transport, one size, 20 ms a side); no
//! speed assertions.

use std::process::Command;

mod util;

use util::{Registry, ipcx, run, unique};

/// Removes the files on drop, so a failing test leaves none behind.
struct Files(Vec<std::path::PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn bench(reg: &Registry, extra: &[&str]) -> Command {
    let mut c = ipcx(reg);
    c.args([
        "bench",
        "--sizes",
        "64",
        "--pin",
        "none",
        "--transports",
        "unix",
        "--budget-ms",
        "20",
    ])
    .args(extra);
    c
}

#[test]
fn bench_repeat_keeps_every_repetition_and_shows_the_spread() {
    let reg = Registry::new();
    let dir = std::env::temp_dir();
    let files = Files(vec![
        dir.join(format!("{}.json", unique("bench"))),
        dir.join(format!("{}.svg", unique("bench"))),
    ]);
    let mut c = bench(&reg, &["--repeat", "2", "--json"]);
    c.arg(&files.0[0]).arg("--svg").arg(&files.0[1]);
    let out = run(c, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&files.0[0]).expect("the JSON file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["repeat"], 2);
    assert_eq!(v["budget_ms_per_repetition"], 20);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "a round-trip and a throughput row");
    for r in results {
        let kind = r["kind"].as_str().unwrap();
        let figure = if kind == "round-trip" {
            "p50_ns"
        } else {
            "msgs_per_s"
        };
        let reps = r["repetitions"].as_array().expect("repetitions");
        assert_eq!(reps.len(), 2, "{r}");
        let mut ratios = Vec::new();
        for x in reps {
            let (a, b) = (
                x["ipcx"][figure].as_f64().unwrap(),
                x["raw"][figure].as_f64().unwrap(),
            );
            assert!(a > 0.0 && b > 0.0, "{x}");
            let ratio = x["ratio"].as_f64().unwrap();
            assert!((ratio - a / b).abs() <= 1e-9 * ratio, "{x}");
            ratios.push(ratio);
        }
        // The row's ratio is the median (here the mean of two) of the
        // repetitions' ratios, with their range beside it.
        let s = &r["ratio_spread"];
        let (min, max) = (ratios[0].min(ratios[1]), ratios[0].max(ratios[1]));
        assert_eq!(s["min"].as_f64().unwrap(), min, "{r}");
        assert_eq!(s["max"].as_f64().unwrap(), max, "{r}");
        let median = (ratios[0] + ratios[1]) / 2.0;
        assert!((s["median"].as_f64().unwrap() - median).abs() <= 1e-9 * median);
        assert_eq!(r["ratio"], s["median"]);
        let unstable = (median - min).max(max - median) / median > 0.15;
        assert_eq!(r["unstable"].as_bool(), Some(unstable), "{r}");
        assert_eq!(s["unstable"].as_bool(), Some(unstable), "{r}");
    }

    // The table: the spread column, one line per size with both ranges,
    // and the legend of the mark.
    assert!(stdout.contains("ratio [min-max]"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("unix "))
        .unwrap_or_else(|| panic!("no unix line in\n{stdout}"));
    assert_eq!(line.matches("x [").count(), 2, "{line}");
    assert!(
        stdout.contains("median of 2 interleaved repetitions"),
        "{stdout}"
    );
    assert!(stdout.contains("~ = unstable"), "{stdout}");

    // The chart: an error bar per ratio.
    let svg = std::fs::read_to_string(&files.0[1]).expect("the SVG file");
    assert_eq!(svg.matches(r#"class="range""#).count(), 2, "{svg}");
    assert!(svg.contains("over 2 repetitions"));
}

#[test]
fn bench_repeat_must_be_at_least_one() {
    let reg = Registry::new();
    let out = run(bench(&reg, &["--repeat", "0"]), b"");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--repeat"), "{err}");
}
