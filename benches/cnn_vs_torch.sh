#!/usr/bin/env bash
# simdnet against PyTorch on the two convolutional networks of issue 14,
# side by side on this machine, in one run:
#
#   bash benches/cnn_vs_torch.sh [SEEDS [EPOCHS [THREADS]]]     (defaults: 3 seeds, 2 epochs, 2 threads)
#   NETS=lenet bash benches/cnn_vs_torch.sh                     (one network only)
#
# For each network (LeNet-5, Keras' mnist_cnn) and each seed 1..SEEDS, it runs
# `simdnet train --model NET` and `../shared/peers/torch_cnn.py --arch NET`
# one after the other (interleaved, so both see the same machine load), and
# takes each run's LAST epoch's training time (no validation; the first epoch
# also pays for warm-up in both). It prints the medians over seeds, the ratio
# torch / simdnet, and the distance of simdnet's epoch to the compute limit:
# the epoch's multiply-adds (forward, weight and input gradients, no input
# gradient for the first layer) at the all-threads FMA peak that
# `simdnet bench` measures in the same run.
#
# PyTorch lives outside the repository (see ../shared/peers/README.md):
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
# Override with PEERS_PYTHON=... and PEERS_DIR=... .
set -euo pipefail

seeds=${1:-3}
epochs=${2:-2}
threads=${3:-2}
peer_script=torch_cnn.py
# shellcheck source=benches/peers_setup.sh
source "$(dirname "$0")/peers_setup.sh"

# training GFLOP per 60,000-image epoch: 2 x (3 x forward MACs - the first layer's input gradient)
declare -A gflop=(
    [lenet]=$(python3 -c 'print(60000 * 2 * (3 * (117600 + 240000 + 48000 + 10080 + 840) - 117600) / 1e9)')
    [keras-cnn]=$(python3 -c 'print(60000 * 2 * (3 * (194688 + 10616832 + 1179648 + 1280) - 194688) / 1e9)')
)

last_simdnet_epoch() { # the training seconds of the last "Epoch N/N - X.XXXs" line
    grep -E '^Epoch [0-9]+/[0-9]+ - ' | tail -1 | sed -E 's/^Epoch [0-9]+\/[0-9]+ - ([0-9.]+)s.*/\1/'
}
last_torch_epoch() { # the last entry of train_s in the PEER_RESULT json
    grep '^PEER_RESULT ' | sed 's/^PEER_RESULT //' | python3 -c 'import json,sys; print(json.load(sys.stdin)["train_s"][-1])'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf '\n%-10s %6s %12s %12s %8s %14s %10s\n' network seeds "simdnet s" "torch s" "speed-up" "limit s" "x limit"
for net in ${NETS:-lenet keras-cnn}; do
    ours="" theirs=""
    for seed in $(seq 1 "$seeds"); do
        s=$("$bin" train --model "$net" --epochs "$epochs" --seed "$seed" --threads "$threads" 2>/dev/null | last_simdnet_epoch)
        t=$(cd "$peers" && MNIST_DIR="$root/data" "$py" torch_cnn.py --arch "${net/-/_}" --epochs "$epochs" --seed "$seed" --threads "$threads" | last_torch_epoch)
        echo "  $net seed $seed: simdnet ${s}s, torch ${t}s" >&2
        ours="$ours $s" theirs="$theirs $t"
    done
    mo=$(echo "$ours" | median)
    mt=$(echo "$theirs" | median)
    limit=$(python3 -c "print(${gflop[$net]} / $peak)")
    printf '%-10s %6s %12.3f %12.3f %7.2fx %14.3f %9.2fx\n' "$net" "$seeds" "$mo" "$mt" \
        "$(python3 -c "print($mt / $mo)")" "$limit" "$(python3 -c "print($mo / $limit)")"
done
