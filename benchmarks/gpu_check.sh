#!/usr/bin/env bash
# One prepared GPU check (run on a lent device machine from the repository root, e.g. with the
# `device` tool: `bash benchmarks/gpu_check.sh`). Short enough to run twice in 15 device minutes.
#   1. installs the `gpu` extra (jax[cuda12]) into .venv (uv; needs the package index or a warm
#      uv cache on that machine — if neither is reachable it says so and stops);
#   2. engine throughput at grid 256, population 1024 (benchmarks/gpu_fft.py): candidate-steps/s
#      and the achieved FFT memory bandwidth against the device's peak (nominal, and a measured
#      device-to-device copy);
#   3. the duty cycle of warm generations back to back: the CGL campaign sized for a GPU, ticked
#      inline in one warm process (benchmarks/orchestration_overhead.py, section cgl).
# Results land in $OUT (or ./gpu-check-out) as JSON files; copy the numbers into RESULTS.md.
set -euo pipefail
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }

log "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
if ! .venv/bin/python -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; then
  log "installing the gpu extra"
  if ! timeout 300 uv sync --frozen --extra dev --extra bench --extra gpu >>"$OUT/gpu_check.log" 2>&1; then
    log "FAILED: could not install the gpu extra (no package index or uv cache reachable?)"; exit 3
  fi
fi
.venv/bin/python -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())" | tee -a "$OUT/gpu_check.log"

log "engine throughput + FFT bandwidth at grid 256, population 1024"
timeout 300 .venv/bin/python benchmarks/gpu_fft.py --grid 256 --population 1024 --steps 200 \
  2>>"$OUT/gpu_check.log" | tail -1 | tee "$OUT/gpu_fft.json"

log "duty cycle of warm generations (CGL, grid 128/256, population 256, inline, one process)"
SPEC="$OUT/cgl_gpu.yaml"
sed -e 's/population: 16/population: 256/' \
    -e 's/grid: 32, steps: 300, dt: 0.1/grid: 128, steps: 600, dt: 0.05/' \
    -e 's/grid: 64, steps: 600, dt: 0.05/grid: 256, steps: 1200, dt: 0.025/' \
    -e 's/evaluations: 256/evaluations: 4096/' examples/cgl_log_prime.yaml > "$SPEC"
HUNTFLOW_BENCH_CGL_SPEC="$SPEC" timeout 300 .venv/bin/python benchmarks/orchestration_overhead.py \
  --skip rows,steady,history,campaigns,demo 2>>"$OUT/gpu_check.log" | tail -1 | tee "$OUT/gpu_duty_cycle.json"
log "done"
