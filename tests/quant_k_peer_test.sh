#!/usr/bin/env bash
# quant_k_peer_test.sh: our q4_K / q6_K quantizers against llama.cpp's own (ggml_quantize_chunk from the libggml that
# llama-cpp-python ships in the peer venv, REPRO_PEER_VENV, default build/peer-venv, made by make bench) on the same
# inputs: Gaussian and heavy-tailed rows, and SmolLM2's ffn_down weights with the mirror. Our squared error must be
# no worse than llama.cpp's on each set and at least 99% of the super-blocks byte-identical (measured: all). Counted skip without
# the venv.
set -u
case "${REPRO:-bin/repro}" in   # the build whose tests/test_quant_k runs: make test passes its bin/repro[-luajit][-asan]
  *-luajit-asan) build=build/luajit-asan;; *-luajit) build=build/luajit;; *-asan) build=build/lua5.4-asan;; *) build=build/lua5.4;;
esac
venv=${REPRO_PEER_VENV:-build/peer-venv}
"$venv/bin/python" -c "import llama_cpp" 2>/dev/null || { echo "skip: llama-cpp-python not in $venv (make bench builds it): q4_K/q6_K comparison with llama.cpp not run"; echo "ok quant_k_peer_test"; exit 0; }
dir=$(mktemp -d /tmp/rp_quant_k_XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$build/tests/test_quant_k" --dump "$dir" || { echo "FAIL: writing the inputs"; exit 1; }
"$venv/bin/python" tests/ggml_quantize.py "$dir" || { echo "FAIL: llama.cpp's quantizer did not run"; exit 1; }
"$build/tests/test_quant_k" --compare "$dir" || exit 1
echo "ok quant_k_peer_test"
