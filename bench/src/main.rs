//! Meridian's benchmarks. Each prints a table of figures; none is a pass/fail test.
//!
//! `cargo run --release -p meridian-bench -- table` — read throughput of the service
//! table while a writer publishes changes, against an idle table and against a
//! lock-based map under the same writes.

mod table;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("table") => table::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: meridian-bench <benchmark>\n\nbenchmarks:\n  table   table reads while a writer publishes changes"
            );
            std::process::exit(2);
        }
    }
}
