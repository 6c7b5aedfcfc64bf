# glassbox. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PORT ?= 8080
# The demo and the npm package are built optimised; tests use the quicker dev build.
WASM_PROFILE ?= release
# Native builds for tests, lint and the browser tests' CLI share one feature set, so they share
# one build; `lab` adds the research commands (experiments, the fixture trainer, benchmarks).
NATIVE := --features glassbox/webgpu,glassbox/lab
SETUP_STAMP := .tools/setup.stamp

.PHONY: fuzz help setup gemma3 demo test test-native python test-python lint fmt-check lint-wasm check-cuda check-aarch64 cuda-toolkit test-web browser-tests native-build bench interp-report pkg web fixtures reference clean

help:
	@echo "make demo    serve the web shell on http://127.0.0.1:$(PORT)/ with the default model"
	@echo "make test    native tests, clippy, the wasm build, tsc and browser tests"
	@echo "make setup   install toolchains, browsers and the default models (idempotent)"
	@echo "make pkg     build the npm package into pkg/"
	@echo "make bench   benchmarks against peer engines"
	@echo "make fuzz    every fuzz target to 10^6 executions or an hour (see FUZZING.md)"
	@echo "make interp-report  rewrites docs/interp.md's tables from the arithmetic experiment"

setup:
	scripts/setup.sh
	@touch $(SETUP_STAMP)

# The optional second model alone (setup fetches it unless GLASSBOX_SKIP_GEMMA3=1).
gemma3:
	python3 scripts/fetch_models.py --gemma3

# Setup only when it has never completed here, or its inputs changed since.
$(SETUP_STAMP): scripts/setup.sh scripts/fetch_models.py Cargo.lock www/package-lock.json python/requirements.txt
	$(MAKE) setup

pkg: $(SETUP_STAMP)
	scripts/build-wasm.sh $(WASM_PROFILE)
	cd www && node build.mjs --package-only

web: pkg
	cd www && node build.mjs --shell-only

demo: web
	cd www && node serve.mjs $(PORT)

# Each phase's wall time goes to .tools/phase-times (printed at the end, and by .ci/run). Both
# builds lint the crate with clippy as they compile it: the native one through CLIPPY_BUILD, the
# wasm one through WASM_LINT, so no second, check-only pass compiles the dependencies again. Each
# phase keeps both cores busy on its own; sharing them costs more than it saves (measured: the
# native tests took 987 s beside the others against 380 s alone). The CUDA build is not part of
# it (`make check-cuda`, below).
test: $(SETUP_STAMP)
	@rm -f .tools/phase-times
	scripts/phase.sh "format" $(MAKE) fmt-check
	scripts/phase.sh "native tests" $(MAKE) native-build test-native
	scripts/phase.sh "python tests" $(MAKE) test-python
	WASM_LINT=1 scripts/phase.sh "wasm build+lint" $(MAKE) WASM_PROFILE=dev web
	scripts/phase.sh "browser tests" $(MAKE) WASM_PROFILE=dev browser-tests
	@echo "make test: phase times"
	@cat .tools/phase-times

# clippy-driver as the compiler of this crate's targets (library, CLI, tests, examples): the test
# build is also the native lint, with warnings as errors. Every native build below uses it, so
# they share one build.
CLIPPY_BUILD := RUSTC_WORKSPACE_WRAPPER=$$(rustup which clippy-driver) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

# The test binaries and the CLI the browser tests compare against: one build, one profile.
native-build:
	mkdir -p -m 700 .tools/xdg-runtime
	$(CLIPPY_BUILD) cargo build $(NATIVE) --workspace --all-targets

# Mesa's Vulkan WSI complains without a runtime dir, though compute needs none.
test-native:
	mkdir -p -m 700 .tools/xdg-runtime
	$(CLIPPY_BUILD) XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-$(CURDIR)/.tools/xdg-runtime} cargo test $(NATIVE) --workspace

# The Python extension module (python/): the native test build compiles it with the core's tests
# (one feature resolution, so the dependencies build once for both), and this installs it into
# .venv-python as maturin's editable install does: the module beside the package's Python files,
# and a .pth naming python/. `pip install ./python` (maturin) builds it for users.
PYTHON_VENV := .venv-python
python: native-build
	cp target/debug/lib_native.so python/glassbox/_native.abi3.so
	$(PYTHON_VENV)/bin/python -c 'import site, sys; open(site.getsitepackages()[0] + "/glassbox.pth", "w").write(sys.argv[1] + "\n")' $(CURDIR)/python

# Parity with the CLI the native build made, and Ray on a local two-worker cluster.
test-python: python
	mkdir -p -m 700 .tools/xdg-runtime
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-$(CURDIR)/.tools/xdg-runtime} $(PYTHON_VENV)/bin/python -m pytest -q -p no:cacheprovider python/tests

lint: fmt-check lint-wasm
	cargo clippy --all-targets $(NATIVE) -- -D warnings

fmt-check:
	cargo fmt --all --check

lint-wasm:
	scripts/wasm-cargo.sh clippy --lib --features webgpu -- -D warnings

# nvcc from PyPI, pinned (scripts/cuda-requirements.txt), for the CUDA build and the GPU check.
CUDA_VENV := .venv-cuda/.installed
$(CUDA_VENV): scripts/cuda-requirements.txt
	python3 -m venv .venv-cuda
	.venv-cuda/bin/pip install --quiet -r scripts/cuda-requirements.txt
	@touch $@
cuda-toolkit: $(CUDA_VENV)

# Compiles and lints every CUDA-gated line (candle's kernels included) with the pinned nvcc, and
# with WebGPU too, every native line; no GPU or CUDA libraries are needed, so nothing is linked.
# Not part of `make test`: candle's kernels alone take about 4.5 minutes of both cores to compile,
# for the few lines of glassbox that the feature gates (CandleBackend's device setup, the CLI's
# device choice, tests/cuda_kernels.rs). Run it when changing those or candle's version;
# `scripts/gpu-check.sh prepare` builds the same code.
check-cuda: $(CUDA_VENV)
	scripts/cuda-env.sh cargo clippy --target-dir target/cuda --features cuda,webgpu,lab --all-targets -- -D warnings

# The NEON kernels, cross-compiled and run under QEMU (scripts/check-aarch64.sh). Not part of
# `make test`: it compiles every dependency a second time for aarch64.
check-aarch64:
	scripts/check-aarch64.sh

# The browser tests compare the wasm engine with the native CLI's numbers: the CLI is the one
# native-build makes for the native tests (the same profile and features).
test-web: web native-build browser-tests

# Two test files at a time: each drives its own Chromium, whose wasm runs on one core.
browser-tests:
	cd www && npx tsc --noEmit
	cd www && node --test --test-concurrency=2 tests/

bench: $(SETUP_STAMP)
	python3 scripts/bench.py

# Every fuzz target to 10^6 executions or an hour (FUZZ_RUNS, FUZZ_SECONDS); nightly + cargo-fuzz.
fuzz:
	rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	scripts/fuzz.sh

# The arithmetic experiment's tables in docs/interp.md (about 10 minutes on 2 cores).
interp-report: $(SETUP_STAMP)
	python3 scripts/interp_report.py

REFERENCE_PY := .venv-reference/bin/python
$(REFERENCE_PY):
	python3 -m venv .venv-reference
	$(REFERENCE_PY) -m pip install --quiet gguf==0.19.0 numpy

# Tiny random-weight models of each architecture with their NumPy logits, and small vocabularies
# for each tokenizer kind (committed; `make reference` tokenises with llama.cpp against them).
VOCAB_FIXTURES := vocab-llama-bpe vocab-qwen2 vocab-gpt2 vocab-spm
# The LLaVA fixture is trained in Rust (about 10 minutes on 2 cores; src/vision/train.rs).
LLAVA_FIXTURE := tests/fixtures/shapes-llava-mmproj.gguf tests/fixtures/shapes-llava-lm.gguf
fixtures: $(REFERENCE_PY) $(SETUP_STAMP)
	$(REFERENCE_PY) scripts/make_fixtures.py
	$(REFERENCE_PY) scripts/make_tokenizer_fixtures.py
	$(REFERENCE_PY) scripts/make_reward_fixture.py
	$(REFERENCE_PY) scripts/make_kernel_fixture.py
	cargo run --release --features lab --bin glassbox -- train-vqa-fixture --tokenizer-from $(SMOLLM2) \
		--mmproj-out tests/fixtures/shapes-llava-mmproj.gguf --lm-out tests/fixtures/shapes-llava-lm.gguf

# Regenerates the committed references with independent tools: the PyPI gguf package and
# llama.cpp (llama-cpp-python builds from source: about 10 minutes on 2 cores).
SMOLLM2 := models/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA3 := models/gemma3/gemma-3-270m-q4_k_m.gguf
# AVX2 by name: llama.cpp's GGML_NATIVE builds die in their first eval on AVX-512/AMX Xeons.
reference: $(SETUP_STAMP) $(REFERENCE_PY)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" \
		CMAKE_BUILD_PARALLEL_LEVEL=2 $(REFERENCE_PY) -m pip install --quiet llama-cpp-python==0.3.36
	$(REFERENCE_PY) tests/reference/gguf_reference.py $(SMOLLM2) tests/reference/smollm2-135m-instruct-q4_1.json
	$(REFERENCE_PY) tests/reference/llamacpp_tokenize.py $(SMOLLM2) tests/reference/smollm2-tokenize-llamacpp.json
	for v in $(VOCAB_FIXTURES); do \
		$(REFERENCE_PY) tests/reference/llamacpp_tokenize.py tests/fixtures/$$v.gguf tests/reference/$$v-tokenize-llamacpp.json; \
	done
	$(REFERENCE_PY) tests/reference/llamacpp_logits.py $(SMOLLM2) tests/reference/smollm2-logits-llamacpp.json
	$(REFERENCE_PY) tests/reference/llamacpp_tokenize.py $(GEMMA3) tests/reference/gemma3-270m-tokenize-llamacpp.json
	$(REFERENCE_PY) tests/reference/llamacpp_logits.py $(GEMMA3) tests/reference/gemma3-270m-logits-llamacpp.json
	$(REFERENCE_PY) tests/reference/llamacpp_token_logprobs.py $(SMOLLM2) tests/fixtures/smollm2-vocab-tiny-q8_0.gguf \
		tests/reference/token-rewards-llamacpp.json
	$(REFERENCE_PY) tests/reference/numpy_forward.py $(SMOLLM2) tests/reference/smollm2-logits-llamacpp.json \
		tests/reference/smollm2-hooks-numpy
	$(REFERENCE_PY) tests/reference/numpy_attribution.py tokenize $(SMOLLM2) .tools/attribution-ids.json
	$(REFERENCE_PY) tests/reference/numpy_attribution.py $(SMOLLM2) .tools/attribution-ids.json \
		tests/reference/smollm2-attribution-numpy
	$(REFERENCE_PY) tests/reference/llamacpp_tasks.py $(SMOLLM2) tests/reference/tasks-llamacpp.json
	$(REFERENCE_PY) tests/reference/llamacpp_exam.py $(SMOLLM2) tests/reference/exam-llamacpp.json
	$(REFERENCE_PY) -m pip install --quiet tokenizers==0.23.3 vaderSentiment==3.3.2 empath==0.89 requests pillow==11.3.0
	$(REFERENCE_PY) tests/reference/minilm_numpy.py
	$(REFERENCE_PY) -m pip install --quiet scikit-learn==1.5.2 pandas==2.2.3
	$(REFERENCE_PY) tests/reference/sklearn_harmonic.py tests/reference/harmonic-sklearn.json
	cargo run --bin glassbox -- --backend cpu probe train $(SMOLLM2) --input tests/data/conspiracy_posts.jsonl \
		--hook blocks.15.hook_resid_post --output .tools/probe.safetensors \
		--features tests/fixtures/probe-conspiracy-l15-last.safetensors
	cargo run --bin glassbox -- --backend cpu probe train $(SMOLLM2) --input tests/data/fmd_claims.jsonl \
		--text-field claim --position mean --hook blocks.10.hook_resid_post --output .tools/probe.safetensors \
		--features tests/fixtures/probe-fmd-claims-l10-mean.safetensors
	$(REFERENCE_PY) tests/reference/sklearn_probe.py tests/reference/probe-sklearn.json \
		tests/fixtures/probe-conspiracy-l15-last.safetensors tests/fixtures/probe-fmd-claims-l10-mean.safetensors
	$(REFERENCE_PY) tests/reference/affect_python.py
	$(REFERENCE_PY) tests/reference/pil_preprocess.py
	$(REFERENCE_PY) tests/reference/numpy_clip.py
	$(REFERENCE_PY) tests/reference/gguf_llava_fixture.py $(LLAVA_FIXTURE) tests/reference/shapes-llava-gguf.json

clean:
	cargo clean
	rm -rf www/dist pkg/glassbox* pkg/*.d.ts pkg/snippets .tools/setup.stamp
