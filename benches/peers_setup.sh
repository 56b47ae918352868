# Sourced by the scripts that run simdnet beside ../shared/peers
# (cnn_vs_torch.sh, mlp_vs_peers.sh), after they set `threads` and
# `peer_script` (the peer program they need): finds the peers' Python and
# folder (PEERS_PYTHON, PEERS_DIR), builds simdnet, prints the machine, and
# sets `root`, `py`, `peers`, `bin` and `peak` (the FMA peak on `threads`
# threads, as `simdnet bench` measures it in this run).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PEERS_PYTHON:-/tmp/peers/bin/python}
peers=${PEERS_DIR:-$root/../shared/peers}
bin=$root/target/release/simdnet

[ -x "$py" ] || { echo "error: no Python with torch at $py: set PEERS_PYTHON, or see $peers/README.md" >&2; exit 1; }
[ -f "$peers/$peer_script" ] || { echo "error: $peers/$peer_script not found: set PEERS_DIR" >&2; exit 1; }
(cd "$root" && cargo build --release --quiet)

lscpu | grep -E 'Model name|^CPU\(s\)' | sed 's/  */ /g'
peak=$("$bin" bench --json --sizes "" --layers "" --threads "$threads" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_gflops"]["all_threads"]["best"])')
echo "FMA peak on $threads threads (simdnet bench): $peak GFLOP/s"
