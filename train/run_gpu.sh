#!/usr/bin/env bash
# One GPU call (at most 10 minutes): train models from the corpus, one after another.
# Each argument is PRESET:STEPS:MINUTES (the cosine schedule spans STEPS; MINUTES caps the run,
# and a run cut short resumes with RESUME=1 in the next call, whose checkpoints stay in
# train/ckpt while the machine is warm). Models and logs go to $OUT/<preset>/.
# Measured on one H200: py-mamba1 (2.7M parameters, 64 x 256 bytes a step) about 0.65 s a step,
# py-mamba1-draft about 0.1 s a step.
# Usage: bash train/run_gpu.sh py-mamba1:600:7.5 py-mamba1-draft:400:1.5
set -euo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name())'
for job in "$@"; do
  IFS=: read -r preset steps minutes <<< "$job"
  python3 train/train_byte_mamba.py --corpus train/data/corpus.npz --preset "$preset" --out "train/ckpt/$preset" \
      --steps "$steps" --minutes "$minutes" ${RESUME:+--resume} 2>&1 | grep -v '^\[transformers\]' \
      | awk '/step/ && ++n % 6 != 1 {next} {print}'
  mkdir -p "$OUT/$preset"
  cp "train/ckpt/$preset/model/model.safetensors" "train/ckpt/$preset/model/config.json" \
     "train/ckpt/$preset/train_log.json" "$OUT/$preset/"
done
