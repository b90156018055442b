#!/usr/bin/env bash
# One prepared GPU check (run on a lent device machine from the repository root, e.g. with the
# `device` tool: `bash benchmarks/gpu_check.sh`). About 5 minutes, so it runs twice in 15 device
# minutes (each step has its own timeout; GPU_CHECK_BASELINE=1 adds the process-worker round, ~2 min).
#   1. installs the `gpu` extra (jax[cuda12]) into .venv (uv; needs the package index or a warm
#      uv cache on that machine — if neither is reachable it says so and stops);
#   2. engine throughput at grid 256, population 1024 (benchmarks/gpu_fft.py): candidate-steps/s
#      and the achieved FFT memory bandwidth against the device's peak (nominal, and a measured
#      device-to-device copy);
#   3. the duty cycle of warm generations back to back (benchmarks/pool_duty_cycle.py): a real
#      prefect server, the gpu pool served by `huntflow worker`, a CGL campaign at grid 256,
#      population 256, its steps calibrated so that a generation evaluates for ~20 s, 3
#      generations: gpu_duty_cycle (over the whole window, the first generation included; the
#      worker compiles the campaign's executable when the campaign appears, from an empty
#      compilation cache) and median_gap_seconds. GPU_CHECK_NOWARMUP=1 adds a round with
#      `huntflow worker --no-warm-up` (the first generation compiling inside its run).
# Results land in $OUT (or ./gpu-check-out) as JSON files; copy the numbers into RESULTS.md.
set -euo pipefail
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }

log "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
if ! .venv/bin/python -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; then
  log "installing the gpu extra"
  if ! timeout 240 uv sync --frozen --extra dev --extra bench --extra gpu >>"$OUT/gpu_check.log" 2>&1; then
    log "FAILED: could not install the gpu extra (no package index or uv cache reachable?)"; exit 3
  fi
fi
.venv/bin/python -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())" | tee -a "$OUT/gpu_check.log"

log "engine throughput + FFT bandwidth at grid 256, population 1024"
timeout 180 .venv/bin/python benchmarks/gpu_fft.py --grid 256 --population 1024 --steps 200 \
  2>>"$OUT/gpu_check.log" | tail -1 | tee "$OUT/gpu_fft.json" || log "gpu_fft failed or timed out (see the log)"

MODES=warm
[ "${GPU_CHECK_NOWARMUP:-0}" = 1 ] && MODES="$MODES,nowarmup"
[ "${GPU_CHECK_BASELINE:-0}" = 1 ] && MODES="$MODES,baseline"
log "duty cycle of warm generations (CGL grid 256, population 256, ~20 s generations, modes $MODES)"
timeout 360 .venv/bin/python benchmarks/pool_duty_cycle.py --grid 256 --population 256 --generations 3 \
  --rounds 1 --target-seconds 20 --modes "$MODES" --timeout 240 \
  2>>"$OUT/gpu_check.log" | tail -1 | tee "$OUT/gpu_duty_cycle.json" || log "pool_duty_cycle failed or timed out (see the log)"
log "done"
