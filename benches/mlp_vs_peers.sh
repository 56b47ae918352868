#!/usr/bin/env bash
# simdnet against PyTorch and numpy on the two dense networks (the workshop's
# 784-16-16-10 and Keras' mnist_mlp, 784-512-512-10 with dropout 0.2), side
# by side on this machine, in one run:
#
#   bash benches/mlp_vs_peers.sh [SEEDS [EPOCHS [THREADS]]]     (defaults: 3 seeds, 4 epochs, 2 threads)
#
# For each network and each seed 1..SEEDS it runs `simdnet train`, then
# ../shared/peers/torch_mlp.py (and for the workshop network numpy_mlp.py)
# one after the other, so all see the same machine load, and takes each run's
# LAST epoch, training plus the pass over the 10,000 test images (the first
# epochs also pay for warm-up: on this VM the first two epochs of a process
# run up to twice as long). It prints the medians over seeds, each peer's
# time over simdnet's, and simdnet's epoch against the compute limit: the
# epoch's GEMM work (forward, weight and input gradients, no input gradient
# for the first layer, over 60,000 images; the forward pass over 10,000) at
# the all-threads FMA peak `simdnet bench` measures in the same run.
#
# The peers live outside the repository (see ../shared/peers/README.md):
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
# Override with PEERS_PYTHON=... and PEERS_DIR=... . numpy uses OpenBLAS's
# own threads (all cores).
set -euo pipefail

seeds=${1:-3}
epochs=${2:-4}
threads=${3:-2}
[ "$epochs" -ge 2 ] || { echo "error: EPOCHS must be at least 2 (the last epoch is timed, the first warms up)" >&2; exit 2; }
peer_script=torch_mlp.py
# shellcheck source=benches/peers_setup.sh
source "$(dirname "$0")/peers_setup.sh"

# GFLOP per epoch: 60,000 x 2 x (3 x MACs - the first layer's input gradient) + 10,000 x 2 x MACs
gflop() { # layer widths, e.g. 784 16 16 10
    python3 -c 'import sys
w = [int(v) for v in sys.argv[1:]]
macs = sum(a * b for a, b in zip(w, w[1:]))
print((60000 * 2 * (3 * macs - w[0] * w[1]) + 10000 * 2 * macs) / 1e9)' "$@"
}
last_simdnet_epoch() { # the last history entry's seconds (training + validation)
    python3 -c 'import json,sys; print(json.load(sys.stdin)["history"][-1]["seconds"])'
}
last_peer_epoch() { # the last entry of epoch_s (training + validation) in the PEER_RESULT json
    grep '^PEER_RESULT ' | sed 's/^PEER_RESULT //' | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch_s"][-1])'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf '\n%-16s %5s %10s %10s %10s %9s %9s %9s %9s\n' network seeds "simdnet s" "torch s" "numpy s" "torch/us" "numpy/us" "limit s" "x limit"
for net in small big; do
    if [ "$net" = small ]; then
        name=784-16-16-10 flags=(--layers 16,16) widths=(784 16 16 10)
    else
        name=784-512-512-10 flags=(--layers 512,512 --dropout 0.2) widths=(784 512 512 10)
    fi
    ours="" torch="" numpy=""
    for seed in $(seq 1 "$seeds"); do
        s=$("$bin" train "${flags[@]}" --epochs "$epochs" --seed "$seed" --threads "$threads" --json 2>/dev/null | last_simdnet_epoch)
        t=$(cd "$peers" && MNIST_DIR="$root/data" "$py" torch_mlp.py --arch "$net" --epochs "$epochs" --seed "$seed" --threads "$threads" | last_peer_epoch)
        n="-"
        if [ "$net" = small ]; then
            n=$(cd "$peers" && MNIST_DIR="$root/data" "$py" numpy_mlp.py --preset keras --epochs "$epochs" --seed "$seed" | last_peer_epoch)
            numpy="$numpy $n"
        fi
        echo "  $name seed $seed: simdnet ${s}s, torch ${t}s, numpy ${n}s" >&2
        ours="$ours $s" torch="$torch $t"
    done
    mo=$(echo "$ours" | median)
    mt=$(echo "$torch" | median)
    limit=$(python3 -c "print($(gflop "${widths[@]}") / $peak)")
    if [ -n "$numpy" ]; then
        mn=$(echo "$numpy" | median)
        nratio=$(python3 -c "print(f'{$mn / $mo:.1f}x')")
        mn=$(printf '%.3f' "$mn")
    else
        mn="-" nratio="-"
    fi
    printf '%-16s %5s %10.4f %10.4f %10s %8.1fx %9s %9.4f %8.2fx\n' "$name" "$seeds" "$mo" "$mt" "$mn" \
        "$(python3 -c "print($mt / $mo)")" "$nratio" "$limit" "$(python3 -c "print($mo / $limit)")"
done
