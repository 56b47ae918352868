//! The argument parser with each command's flags: the first byte picks the
//! command, the rest is split into arguments at NUL bytes. The parsed flags
//! then go through the shared readers of values (`--layers`, `--threads`,
//! `--split`, bench's networks) and the typed getters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::cli::{args, bench, commands, common};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let cmds = commands();
    let cmd = &cmds[pick as usize % cmds.len()];
    let argv: Vec<String> = rest
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Ok(p) = args::parse(cmd.name, cmd.flags, &argv) else {
        return;
    };
    let _ = common::hidden_layers(&p);
    let _ = common::threads(&p);
    let _ = common::split(&p);
    if let Some(layers) = p.raw("layers") {
        let _ = bench::parse_networks(layers);
    }
    for f in cmd.flags {
        let _ = p.opt::<usize>(f.name);
        let _ = p.opt::<f32>(f.name);
        let _ = p.opt::<u64>(f.name);
        let _ = p.switch(f.name);
    }
    let _ = args::help_text(cmd.name, cmd.about, cmd.flags);
});
