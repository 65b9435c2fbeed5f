#!/usr/bin/env bash
# The device check of issue 14, run once on a lent GPU machine (the `device` tool): the agent's
# --test-capabilities, and NVML's readings (temperature, power, energy, power limits, processes)
# on the real card while a CUDA process holds it, as the agent's clients and conditions see them.
# Wheels the machine lacks travel in .whl/ (see the device README). Output under $OUT.
set -u
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
timeout 60 python3 -m controller --test-capabilities --log-format json \
  > "$OUT/capabilities.json" 2> "$OUT/capabilities.log"; echo "test-capabilities rc=$?"
# A foreign CUDA process: 8 GiB held, a matmul loop, for the process list and the power draw.
python3 - <<'PY' > "$OUT/load.log" 2>&1 &
import time, torch
x = torch.empty(8 << 30, dtype=torch.uint8, device="cuda")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 40
while time.time() < end:
    a = (a @ a).clamp_(-1, 1)
torch.cuda.synchronize()
PY
LOAD=$!
sleep 10
timeout 120 python3 bench/gpu_record.py > "$OUT/nvml.json" 2> "$OUT/nvml.log"; echo "record rc=$?"
wait $LOAD; echo "load rc=$?"
python3 bench/gpu_record.py > "$OUT/nvml-idle.json" 2>> "$OUT/nvml.log"; echo "idle rc=$?"
# As an ordinary user: what NVML answers a power limit without permission.
setpriv --reuid=65534 --regid=65534 --clear-groups env PYTHONPATH="$PYTHONPATH" python3 -c '
import json, pynvml
from controller.clients.gpu_watch import Nvml
n = Nvml()
try:
    print(json.dumps({"done": n.limit_power(650)}))
except Exception as exc:
    print(json.dumps({"refused": str(exc)}))
n.close()' > "$OUT/unprivileged.json" 2>&1; echo "unprivileged rc=$?"; cat "$OUT/unprivileged.json"
nvidia-smi -q -d POWER | grep -m2 -E "Current Power Limit|Default Power Limit"
head -c 3000 "$OUT/nvml.json"; echo; tail -5 "$OUT/nvml.log"; cat "$OUT/capabilities.json" | head -40
