# llamacpp_greedy.py MODEL PROMPT N: llama.cpp's own greedy loop through llama-cpp-python's low-level API
# (llama_decode + argmax of the last logits), printing the layer count on the first line and the N generated
# tokens' text after it. The high-level Llama() call and the AMX repacked buffers of a -march=native build
# crashed on this machine, so extra buffer types are turned off. Used by the export tests when the peer venv
# (bench/bench_peer_llamacpp.sh) has llama_cpp.
import os, sys, ctypes
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from llamacpp_load import load
path, prompt, n_gen = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
L, model = load(path)
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)
toks = (L.llama_token * 512)()
n = L.llama_tokenize(vocab, prompt, len(prompt), toks, 512, True, False)
cp = L.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch = 256, 256, 256
cp.n_threads = cp.n_threads_batch = 2
ctx = L.llama_init_from_model(model, cp)
if L.llama_decode(ctx, L.llama_batch_get_one(toks, n)) != 0:
    sys.exit("decode failed")
out, buf, one = b"", ctypes.create_string_buffer(256), (L.llama_token * 1)()
for _ in range(n_gen):
    lg = L.llama_get_logits_ith(ctx, -1)
    best = max(range(n_vocab), key=lambda i: lg[i])
    k = L.llama_token_to_piece(vocab, best, buf, 256, 0, False)
    out += buf.raw[:k]
    one[0] = best
    if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
        sys.exit("decode failed")
sys.stdout.write("%d\n%s" % (L.llama_model_n_layer(model), out.decode("utf-8", "replace")))
