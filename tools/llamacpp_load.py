# llamacpp_load.py: the one way the peer scripts (bench/bench_peer_llamacpp.sh, tests/llamacpp_greedy.py) load a
# GGUF file into llama.cpp through llama-cpp-python's low-level API. Its AMX weight repacking (the default where
# the CPU has AMX, e.g. Sapphire Rapids) crashes in llama_decode on any multi-token batch in 0.3.36 (a
# segmentation fault; one-token batches work), so the model is loaded without the extra buffer types, i.e. with
# the plain CPU kernels it runs on CPUs without AMX.
import sys
import llama_cpp as L


def load(path):
    """Initialise the backend and return (llama_cpp module, model) for the GGUF file at path; exit if it fails."""
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    if hasattr(mp, "use_extra_bufts"):
        mp.use_extra_bufts = False
    model = L.llama_model_load_from_file(path if isinstance(path, bytes) else path.encode(), mp)
    if not model:
        sys.exit("cannot load model")
    return L, model
