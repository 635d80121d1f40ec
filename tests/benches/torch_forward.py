#!/usr/bin/env python3
"""PyTorch side of the engine benchmark: times the official Chronos-Bolt pipeline
(chronos-forecasting's ChronosBoltPipeline.predict, 64 steps) on a checkpoint directory the
benchmark wrote, so the engine and PyTorch are measured on the same machine, in one run.

Protocol on stdin/stdout, one command per line, one answer line each:
  load DIR            -> "ok" (the pipeline is loaded on the CPU in float32)
  run BATCH CONTEXT   -> milliseconds of one predict call on BATCH random-walk series of
                         CONTEXT points (the first call per shape is a warm-up, not reported)
  quit
"ready THREADS TORCH_VERSION" is printed first, or "unavailable REASON" if torch or
chronos-forecasting cannot be imported (the benchmark then prints a note and goes on).
Threads: torch.set_num_threads(RAYON_NUM_THREADS), the engine's thread count.
"""

import os
import sys
import time


def main() -> None:
    try:
        import torch
        from chronos import ChronosBoltPipeline
    except Exception as e:  # the benchmark only needs to know it cannot compare
        print(f"unavailable {type(e).__name__}: {e}".replace("\n", " "), flush=True)
        return
    threads = int(os.environ.get("RAYON_NUM_THREADS", "0") or 0) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    print(f"ready {threads} {torch.__version__}", flush=True)
    pipeline = None
    inputs = {}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "load":
            pipeline = ChronosBoltPipeline.from_pretrained(
                words[1], device_map="cpu", torch_dtype=torch.float32
            )
            inputs.clear()
            print("ok", flush=True)
        elif words[0] == "run":
            batch, context = int(words[1]), int(words[2])
            key = (batch, context)
            if key not in inputs:
                g = torch.Generator().manual_seed(batch * 7919 + context)
                steps = 3.0 * torch.rand((batch, context), generator=g, dtype=torch.float64)
                inputs[key] = (900.0 + steps.cumsum(dim=1)).to(torch.float32)
                pipeline.predict(inputs[key], prediction_length=64)
            start = time.perf_counter()
            pipeline.predict(inputs[key], prediction_length=64)
            print(f"{(time.perf_counter() - start) * 1e3:.4f}", flush=True)
        else:
            print(f"error unknown command {words[0]}", flush=True)


if __name__ == "__main__":
    main()
