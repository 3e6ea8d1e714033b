"""What the tiers share, importable from tests and benchmarks alike: the tiny model
builders, the fake engine, the app's pilot helpers, damage for fuzzing, PEFT parity and
ExecuTorch's runner."""
