"""The model: base loading (base), the cognitive modules (modules: one self-contained file, shipped with releases),
their injection, training and persistence (inject), a release's remote code (remote_code) and the GPU memory
estimate (memory)."""
